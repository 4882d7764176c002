"""livematch: find which catalogue products a live-commerce presenter shows.

Run with ``streamlit run app.py``. The pages live in pages/ (Match, Inspect, Catalogue, Evaluate); each draws the
app's frame first (ui.shell). This entry point sends "/" to the Match page. Models and indexes are loaded in one
place, engine.workspace, through ui.state's caches (shared by all sessions).
"""

from __future__ import annotations

import streamlit as st

from ui.shell import HOME

st.switch_page(HOME, query_params=st.query_params.to_dict())  # a link's ?catalogue=... is kept
