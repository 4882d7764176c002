"""Match a clip: upload one (or pick a sample of the catalogue), then see frames, votes and the top products."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from engine.io.catalogue import Catalogue
from engine.config import Settings
from ui import state
from ui.shell import shell
from ui.startup import prepare_index
from ui.components import empty_state, guard, page_header
from ui.matching import UPLOAD_TYPES, Analysis, ClipSource, analyse_cached, cached_file_sha256, upload_source
from ui.progress import describe_match, run_with_progress
from ui.names import clip_shows
from ui.live import stream_panel
from ui.timeline import timeline_chosen, timeline_panel
from ui.views import render_match
from ui.text import md

shell()

UPLOAD = "Upload a clip"
SAMPLE = "Sample clip from the catalogue"
STREAM = "Stream URL"
SHA_KEY = "match.upload_sha256"  # (bytes, SHA-256) of the current upload: see ui.matching.upload_source
SHOWN_KEY = "match.shown_sha256"  # SHA-256 of the clip whose result the page shows or is matching (None: none)


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def choose_source(catalogue: Catalogue) -> ClipSource | str | None:
    """The clip to match, from the uploader or the sample picker (None until one is chosen, or it is refused), or
    STREAM when a live stream is chosen."""
    samples = {vid: c for vid, c in catalogue.clips.items() if c.path}
    modes = [UPLOAD, SAMPLE, STREAM] if samples else [UPLOAD, STREAM]
    mode = st.radio("Clip source", modes, horizontal=True, label_visibility="collapsed", key="match.mode")
    if mode == STREAM:
        return STREAM
    if mode == SAMPLE:
        names = {pid: p.name for pid, p in catalogue.products.items()}
        vid = st.selectbox(
            "Sample clip", list(samples), index=None, key="match.sample", placeholder="Choose a clip of the catalogue",
            format_func=lambda v: f"{v} · shows {clip_shows(v, samples[v].truth, names)}",
        )
        if vid is None:
            return None
        path = Path(samples[vid].path or "")
        stat = path.stat()
        return ClipSource.from_file(path, cached_file_sha256(str(path), stat.st_size, stat.st_mtime))
    return uploaded_source()


def uploaded_source() -> ClipSource | None:
    """The clip in the uploader, identified by the digest of its bytes; None while there is none (or it is refused)."""
    limit = upload_limit_mb()
    uploaded = st.file_uploader(
        f"Video clip · {', '.join(t.upper() for t in UPLOAD_TYPES)} · up to {limit} MB", type=list(UPLOAD_TYPES),
        key="match.upload", max_upload_size=limit,
    )
    if uploaded is not None and uploaded.size > limit * 1024 * 1024:
        st.error(f"{md(uploaded.name)}: {uploaded.size / 2**20:.0f} MB is over the {limit} MB upload limit.",
                 icon=":material/error:")
        uploaded = None
    if uploaded is None:
        st.session_state.pop(SHA_KEY, None)  # let go of the previous upload's bytes
        return None
    return upload_source(uploaded.name, uploaded.getvalue(), st.session_state, SHA_KEY)


def result_area(sha256: str | None) -> DeltaGenerator:
    """Where a clip's match is drawn (``sha256``: the clip's digest; None: no clip, the steps are shown). When the clip
    changed, the previous result is removed at once (an empty element takes its place before the new match starts),
    so it never shows under another clip while that one is matched; a rerun over the same clip redraws in place."""
    if SHOWN_KEY in st.session_state and st.session_state[SHOWN_KEY] == sha256:
        return st.container()
    st.session_state[SHOWN_KEY] = sha256
    return st.empty().container()


def match(settings: Settings, catalogue: Catalogue, source: ClipSource) -> Analysis:
    engine = state.get_engine(settings, catalogue)
    key = state.engine_key(settings, catalogue)
    analysis = run_with_progress(
        lambda progress: analyse_cached(source.sha256, key, engine, source, progress), describe_match
    )
    return replace(analysis, clip_name=source.name)


def how_it_works(settings: Settings) -> None:
    cols = st.columns(3)
    if settings.search.rank_by == "votes":
        ranking = ("Each frame votes for its closest product: the products are ranked by their votes, then by their "
                   "evidence (best similarity per frame, averaged over the frames).")
    else:
        ranking = ("Each product's best similarity in each frame is averaged over the frames: the products are "
                   "ranked by this evidence, then by their votes (the frames whose closest product they are).")
    steps = [
        (":material/upload_file:", "1 · Add a clip", "Upload a short live-commerce recording, or pick one of the "
         "catalogue's sample clips."),
        (":material/frame_inspect:", "2 · Frames are searched", "Evenly spaced frames are sampled; the presenter "
         "and the garment regions are found and compared with every catalogue product."),
        (":material/how_to_vote:", "3 · Evidence is weighed", ranking),
    ]
    for col, (icon, title, text) in zip(cols, steps):
        with col:
            empty_state(icon, title, text)


def main() -> None:
    page_header("Match a clip", "See which catalogue products the presenter shows in a live-commerce clip.")
    settings = state.current_settings()
    with guard("the catalogue"):
        catalogue = state.get_catalogue(settings)
        state.start_indexing(settings, catalogue)  # in the background, before anything is drawn below
        source = choose_source(catalogue)
        if source == STREAM:
            stream_panel(settings, catalogue)
            return
        with result_area(source.sha256 if source is not None else None):
            if source is None:
                prepare_index(settings, catalogue)  # the upload stays usable above while the index is built
                how_it_works(settings)
                return
            with guard(source.name):
                if timeline_chosen(source):
                    timeline_panel(settings, catalogue, source)
                    return
                analysis = match(settings, catalogue, source)
                render_match(analysis, catalogue, settings, source)


with guard("the Match page"):
    main()
