"""A catalogue is indexed as soon as a page opens it, with its progress shown, rather than after the first upload.

On a fresh machine ``ui.state.catalogue_dir`` generates the built-in demo first (a progress bar under the sidebar's
catalogue line, a few seconds). ``prepare_index`` then starts the catalogue's index build in the background
(``ui.indexing``: one build per index folder for the whole server) and shows it in a status box: a progress bar and
an estimate of the time left, then the models are loaded. A clip chosen meanwhile waits on that same build, with
the same bar, and is matched as soon as it is done.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from engine.config import Settings
from engine.io.catalogue import Catalogue

from . import state
from .components import guard


def catalogue_title(settings: Settings, catalogue: Catalogue) -> str:
    return "The built-in demo" if state.is_builtin_demo(settings) else f"`{Path(catalogue.root).name}`"


def prepare_index(settings: Settings, catalogue: Catalogue) -> None:
    """Index the catalogue (and load the engine) when it has no index yet, in a status box on the page."""
    job = state.start_indexing(settings, catalogue)
    if job is None:
        return
    n, title = len(catalogue.products), catalogue_title(settings, catalogue)
    with guard("the catalogue's index"), st.status(f"Indexing {title[0].lower()}{title[1:]}…",
                                                   expanded=True) as status:
        st.write(f"Its {n} products are embedded once, so that matching a clip starts right away. You can choose a "
                 "clip meanwhile: it is matched as soon as the index is ready.")
        state.get_engine(settings, catalogue)  # waits for the build (its bar and estimate), then loads the models
        summary = state.index_summary(settings, catalogue.root)
        regions = f", {summary.n_items} regions" if summary is not None else ""
        status.update(label=f"{title} is ready: {n} products indexed{regions} in "
                            f"{time.monotonic() - job.started:.0f} s.", state="complete", expanded=False)
