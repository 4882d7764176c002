"""livematch: find which catalogue products a live-commerce presenter shows.

Run with ``streamlit run app.py``. This file draws the app's frame (page setup, navigation, sidebar settings, in
ui.shell) and runs the selected page of app_pages/. Models and indexes are loaded in one place, ui.state (cached and
shared by all sessions).
"""

from __future__ import annotations

from ui.components import guard
from ui.shell import draw_shell

page = draw_shell()
with guard(f"the {page.title} page"):
    page.run()
