"""First start: the built-in demo is indexed as soon as a page needs it, with its progress shown, rather than after
the first upload.

On a fresh machine ``ui.state.catalogue_dir`` generates the demo first (a progress bar under the sidebar's catalogue
line, a few seconds). ``prepare_builtin_demo`` then builds its index and loads the models right away (about 15 s on
a laptop CPU, once per machine), so that the first clip is matched at once. A catalogue of one's own is not indexed
unasked: its Catalogue page has a button for that, and its first match builds a missing index.
"""

from __future__ import annotations

import time

import streamlit as st

from engine.config import Settings
from engine.io.catalogue import Catalogue

from . import state
from .components import guard


def prepare_builtin_demo(settings: Settings, catalogue: Catalogue) -> None:
    """Index the built-in demo (and load the engine) when it has no index yet, in a status box on the page."""
    if not state.is_builtin_demo(settings) or state.index_summary(settings, catalogue.root) is not None:
        return
    n = len(catalogue.products)
    with guard("the built-in demo's index"), st.status("First start: indexing the built-in demo…",
                                                       expanded=True) as status:
        st.write(f"The {n} demo products are embedded once, so that matching a clip starts right away. "
                 "This takes about 15 s on a laptop CPU and happens only on the first start.")
        t0 = time.perf_counter()
        state.get_engine(settings, catalogue)
        summary = state.index_summary(settings, catalogue.root)
        regions = f", {summary.n_items} regions" if summary is not None else ""
        status.update(label=f"The built-in demo is ready: {n} products indexed{regions} in "
                            f"{time.perf_counter() - t0:.0f} s.", state="complete", expanded=False)
