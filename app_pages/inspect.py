"""Inspect an evaluation: correct and incorrect matches, frame by frame, with the regions that were compared."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from engine.catalog import Catalogue
from engine.errors import EngineError
from engine.evaluate import EvalReport
from ui import state
from ui.components import category_label, guard, image_or_placeholder, page_header
from ui.evaluation import run_evaluation
from ui.inspection import ClipComparison, FrameComparison, ProductInfo, Side, compare_clip, visible_frames
from ui.media import clip_crops, thumb

CROP = (300, 300)
CARDS_PER_ROW = 2


def report_label(path: Path) -> str:
    saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    return f"{path.stem} · saved {saved}"


def dataset_catalogue(report: EvalReport) -> Catalogue | None:
    try:
        return state.catalogue_at(report.dataset)
    except EngineError:
        return None


def product_infos(report: EvalReport, catalogue: Catalogue | None) -> dict[str, ProductInfo]:
    infos = {}
    if catalogue is not None:
        infos = {pid: ProductInfo(p.name, p.category, p.cover_image) for pid, p in catalogue.products.items()}
    for o in report.clips:  # names of products no longer in the catalogue, from the results themselves
        for p in o.result.get("ranking", []):
            infos.setdefault(p["product_id"], ProductInfo(p.get("name", p["product_id"]), "", p.get("image_path")))
    return infos


def no_report() -> None:
    settings = state.current_settings()
    st.info("No evaluation report yet. An evaluation matches every clip of a dataset whose true products are known; "
            "its report shows here, clip by clip.", icon=":material/info:")
    left, right = st.columns([1, 3], vertical_alignment="center")
    with left:
        run = st.button("Run the evaluation now", type="primary", icon=":material/play_arrow:", key="inspect.run")
    with right:
        st.page_link("app_pages/evaluate.py", label="or open the Evaluate page to choose a dataset",
                     icon=":material/analytics:")
    if run:
        run_evaluation(settings, state.catalogue_dir(settings))
        st.rerun()


def overview(clips: list[ClipComparison], infos: dict[str, ProductInfo]) -> None:
    """Correct and incorrect clips side by side."""
    good = [c for c in clips if c.correct]
    bad = [c for c in clips if not c.correct]
    left, right = st.columns(2)
    with left, st.container(border=True):
        st.markdown(f"**:green[:material/check_circle:] Correct · {len(good)}**")
        for c in good:
            st.markdown(f"`{c.video_id}` {_name(infos, c.truth)} · {_frames_right(c)}")
        if not good:
            st.caption("No clip was matched correctly.")
    with right, st.container(border=True):
        st.markdown(f"**:red[:material/cancel:] Incorrect · {len(bad)}**")
        for c in bad:
            rank = f"true product ranked {c.truth_rank}" if c.truth_rank else "true product not ranked"
            st.markdown(f"`{c.video_id}` {_name(infos, c.top)} instead of {_name(infos, c.truth)} · {rank} · "
                        f"{_frames_right(c)}")
        if not bad:
            st.caption("No errors: every clip's top product is the true one.")


def _frames_right(c: ClipComparison) -> str:
    right = sum(f.correct for f in c.frames)
    return f"{right} of {len(c.frames)} frames right"


def _name(infos: dict[str, ProductInfo], pid: str | None) -> str:
    if pid is None:
        return "*nothing*"
    return f"**{infos[pid].name}**" if pid in infos else f"**{pid}**"


def _clip_label(c: ClipComparison, infos: dict[str, ProductInfo]) -> str:
    mark = "✓" if c.correct else "✗"
    truth = infos[c.truth].name if c.truth in infos else (c.truth or "unknown")
    return f"{mark} {c.video_id} · {truth}"


def _side_caption(label: str, side: Side | None, infos: dict[str, ProductInfo]) -> str:
    if side is None or side.product_id is None:
        return f"{label}: none"
    name = infos[side.product_id].name if side.product_id in infos else side.product_id
    sim = f" · {side.similarity:.3f}" if side.similarity is not None else ""
    where = "" if side.from_neighbours else " · cover image"
    return f"{label}: {name}{sim}{where}"


def frame_card(frame: FrameComparison, query: bytes | None, infos: dict[str, ProductInfo]) -> None:
    with st.container(border=True):
        verdict = (":green-badge[:material/check: right product]" if frame.correct
                   else ":red-badge[:material/close: wrong product]")
        cat = category_label(frame.category)
        where = f"**Frame #{frame.frame_index}** · {frame.time_s:.1f} s" + (f" · {cat}" if cat else "")
        st.markdown(f"{where} &nbsp; {verdict}")
        cols = st.columns(3)
        with cols[0]:
            image_or_placeholder(query, "Query: the frame's region")
        with cols[1]:
            image_or_placeholder(thumb(frame.chosen.image_path, frame.chosen.box, CROP),
                                 _side_caption("Chosen", frame.chosen, infos))
        with cols[2]:
            truth = frame.truth
            image_or_placeholder(thumb(truth.image_path, truth.box, CROP) if truth else None,
                                 _side_caption("True", truth, infos))


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
        vid = st.selectbox("Clip", list(by_id), key="inspect.clip", format_func=lambda v: _clip_label(by_id[v], infos))
    clip = by_id[vid or shown[0].video_id]
    frames = visible_frames(clip, errors_only)
    path = catalogue.clips[clip.video_id].path if catalogue and clip.video_id in catalogue.clips else None
    if path is None:
        st.warning(f"The clip {clip.video_id} is no longer in {report.dataset}; query regions cannot be shown.",
                   icon=":material/videocam_off:")
    crops = clip_crops(path, clip.n_frames_setting, [(f.frame_index, f.query_box) for f in frames], CROP)
    if clip.correct:
        status = "correct"
    else:
        status = f"true product ranked {clip.truth_rank}" if clip.truth_rank else "true product not ranked"
    st.markdown(f"#### {_name(infos, clip.top)} chosen for clip `{clip.video_id}` · {status}")
    st.caption("Left: the region of the frame that decided its vote. Middle: the catalogue region of the product it "
               "chose. Right: the true product's closest catalogue region in that frame (its cover image when it was "
               "not among the region's candidates).")
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
        st.caption(f"Dataset `{report.dataset}` · {int(m.get('clips', 0))} clips · top-1 {m.get('top1', 0):.0%} · "
                   f"top-5 {m.get('top5', 0):.0%} · MRR {m.get('mrr', 0):.3f}")
        overview([compare_clip(o, infos) for o in report.clips], infos)
        inspector(report, catalogue, infos)


main()
