"""The app's frame, drawn by every page: page setup, styling, logo, links between the pages, sidebar settings.

The pages live in pages/, Streamlit's classic multipage folder: the server routes /inspect, /catalogue, ... to
pages/<name>.py and runs that file. Every page calls ``shell()`` first, so a page is drawn in the same frame
however it is reached (a link, a deep link on a freshly started server, a page switch in AppTest): there is one
way in, not two. Streamlit's own page list is hidden (``client.showSidebarNavigation = false``) and the shell
draws the app's links instead, with titles and icons. app.py is the entry point and sends "/" to the Match page.
Only public Streamlit APIs are used.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from .components import guard, inject_css
from .sidebar import render_sidebar

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
HOME = "pages/match.py"
PAGES: tuple[tuple[str, str, str], ...] = (  # script (relative to app.py), title, icon
    (HOME, "Match a clip", ":material/smart_display:"),
    ("pages/inspect.py", "Inspect", ":material/compare:"),
    ("pages/catalogue.py", "Catalogue", ":material/checkroom:"),
    ("pages/evaluate.py", "Evaluate", ":material/analytics:"),
)


def shell() -> None:
    """The first call of every page: page setup, the links between the pages, and the sidebar settings."""
    st.set_page_config(
        page_title="livematch · live-commerce product recognition",
        page_icon=str(ASSETS / "icon.svg"),
        layout="wide",
        initial_sidebar_state="expanded",
    )
    inject_css()
    st.logo(str(ASSETS / "logo.svg"), icon_image=str(ASSETS / "icon.svg"), size="large")
    with st.sidebar, st.container(key="lm-nav"):
        for script, title, icon in PAGES:
            st.page_link(script, label=title, icon=icon)
    with guard("the sidebar"):
        render_sidebar()
