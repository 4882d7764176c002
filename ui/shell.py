"""The app's frame: page setup, styling, logo, navigation between the pages in app_pages/, sidebar settings.

The page scripts live in app_pages/, not pages/: Streamlit treats a folder named pages/ next to the entry point
as a legacy multipage app until some run has called st.navigation, so a deep link such as /inspect on a freshly
started server (and every page of streamlit.testing's AppTest after switch_page) would run a page on its own,
without this frame and its sidebar settings.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from .components import guard, inject_css
from .sidebar import render_sidebar

ROOT = Path(__file__).resolve().parents[1]
PAGES_DIR = ROOT / "app_pages"
ASSETS = ROOT / "assets"


def pages() -> list:
    return [
        st.Page(PAGES_DIR / "match.py", title="Match a clip", icon=":material/smart_display:", default=True),  # at /
        st.Page(PAGES_DIR / "inspect.py", title="Inspect", icon=":material/compare:", url_path="inspect"),
        st.Page(PAGES_DIR / "catalogue.py", title="Catalogue", icon=":material/checkroom:", url_path="catalogue"),
        st.Page(PAGES_DIR / "evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"),
    ]


def draw_shell():
    """Set up the page, draw the navigation and the sidebar settings; returns the page to run."""
    st.set_page_config(
        page_title="livematch · live-commerce product recognition",
        page_icon=str(ASSETS / "icon.svg"),
        layout="wide",
        initial_sidebar_state="expanded",
    )
    inject_css()
    st.logo(str(ASSETS / "logo.svg"), icon_image=str(ASSETS / "icon.svg"), size="large")
    page = st.navigation(pages())
    with guard("the sidebar"):
        render_sidebar()
    return page
