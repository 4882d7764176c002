"""Inspect an evaluation: correct and incorrect matches, frame by frame, with the regions that were compared."""

from __future__ import annotations

import streamlit as st

from engine.io.catalogue import Catalogue
from engine.errors import EngineError
from engine.types import EvalReport
from ui import state
from ui.shell import shell
from ui.components import guard, page_header
from ui.correcting import correction_control
from ui.evaluation import run_evaluation
from ui.inspect_views import CROP, clip_label, frame_card, overview, product_infos, product_name, report_label
from ui.inspection import ProductInfo, compare_clip, visible_frames
from ui.media import clip_crops
from ui.text import code, md

shell()

CARDS_PER_ROW = 2


def dataset_catalogue(report: EvalReport) -> Catalogue | None:
    try:
        return state.catalogue_at(report.dataset)
    except EngineError:
        return None


def no_report() -> None:
    settings = state.current_settings()
    st.info("No evaluation report yet. An evaluation matches every clip of a dataset whose true products are known; "
            "its report shows here, clip by clip.", icon=":material/info:")
    left, right = st.columns([1, 3], vertical_alignment="center")
    with left:
        run = st.button("Run the evaluation now", type="primary", icon=":material/play_arrow:", key="inspect.run")
    with right:
        st.page_link("pages/evaluate.py", label="or open the Evaluate page to choose a dataset",
                     icon=":material/analytics:")
    if run:
        run_evaluation(settings, state.catalogue_dir(settings))
        st.rerun()


@st.fragment
def inspector(report: EvalReport, catalogue: Catalogue | None, infos: dict[str, ProductInfo]) -> None:
    """Reruns on its own when its widgets change; it has its own guard because a fragment rerun skips the page's."""
    with guard("the inspector"):
        inspect_clip(report, catalogue, infos)


def inspect_clip(report: EvalReport, catalogue: Catalogue | None, infos: dict[str, ProductInfo]) -> None:
    clips = [compare_clip(o, infos) for o in report.clips]
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    with c1:
        errors_only = st.toggle("Errors only", key="inspect.errors_only",
                                help="Only clips and frames whose vote is not the true product.")
    shown = [c for c in clips if not errors_only or visible_frames(c, True)]
    if not shown:
        st.success("No errors in this report: every sampled frame voted for the true product.",
                   icon=":material/celebration:")
        return
    by_id = {c.video_id: c for c in shown}
    with c2:
        vid = st.selectbox("Clip", list(by_id), key="inspect.clip", format_func=lambda v: clip_label(by_id[v], infos))
    clip = by_id[vid or shown[0].video_id]
    frames = visible_frames(clip, errors_only)
    path = catalogue.clips[clip.video_id].path if catalogue and clip.video_id in catalogue.clips else None
    if path is None:
        st.warning(f"The clip {md(clip.video_id)} is no longer in {md(report.dataset)}; query regions cannot be shown.",
                   icon=":material/videocam_off:")
    crops = clip_crops(path, clip.n_frames_setting, [(f.frame_index, f.query_box) for f in frames], CROP)
    if clip.correct:
        status = "correct"
    else:
        status = f"true product ranked {clip.truth_rank}" if clip.truth_rank else "true product not ranked"
    st.markdown(f"#### {product_name(infos, clip.top)} chosen for clip {code(clip.video_id)} · {status}")
    st.caption("Left: the region of the frame that decided its vote. Middle: the catalogue region of the product it "
               "chose. Right: the true product's closest catalogue region in that frame (its cover image when it was "
               "not among the region's candidates).")
    if catalogue is not None:  # "these frames show product X": stored as livestream examples (ui.correcting)
        correction_control(state.current_settings(), catalogue, str(path) if path else None,
                           [f.frame_index for f in frames], f"inspect.correct.{clip.video_id}", clip.truth)
    pairs = list(zip(frames, crops))
    for start in range(0, len(pairs), CARDS_PER_ROW):
        cols = st.columns(CARDS_PER_ROW)
        for col, (frame, crop) in zip(cols, pairs[start : start + CARDS_PER_ROW]):
            with col:
                frame_card(frame, crop, infos)


def main() -> None:
    page_header("Inspect", "Correct and incorrect matches of an evaluation, frame by frame: what the engine saw, "
                "what it chose, and what it should have chosen.")
    settings = state.current_settings()
    with guard("the reports"):
        reports = state.list_reports(settings)
        if not reports:
            no_report()
            return
        path = st.selectbox("Evaluation report", reports, format_func=report_label, key="inspect.report")
        report = state.load_report(path)
        catalogue = dataset_catalogue(report)
        infos = product_infos(report, catalogue)
        m = report.metrics
        st.caption(f"Dataset {code(report.dataset)} · {m.clips} clips · top-1 {m.top1:.0%} · "
                   f"top-5 {m.top5:.0%} · MRR {m.mrr:.3f}")
        overview([compare_clip(o, infos) for o in report.clips], infos)
        inspector(report, catalogue, infos)


with guard("the Inspect page"):
    main()
