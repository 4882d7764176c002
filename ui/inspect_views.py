"""Inspect page views: the correct/incorrect overview and a frame's three-way comparison card."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from engine.io.catalogue import Catalogue
from engine.types import EvalReport
from ui.text import code, md

from .components import category_label, image_or_placeholder
from .names import display_name, has_own_name
from .inspection import ClipComparison, FrameComparison, ProductInfo, Side
from .media import thumb

CROP = (300, 300)


def report_label(path: Path) -> str:
    saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    return f"{path.stem} · saved {saved}"


def product_infos(report: EvalReport, catalogue: Catalogue | None) -> dict[str, ProductInfo]:
    infos = {}
    if catalogue is not None:
        infos = {pid: ProductInfo(p.name, p.category, p.cover_image) for pid, p in catalogue.products.items()}
    for o in report.clips:  # names of products no longer in the catalogue, from the results themselves
        for p in o.result.ranking:
            infos.setdefault(p.product_id, ProductInfo(p.name, "", p.image_path))
    return infos


def overview(clips: list[ClipComparison], infos: dict[str, ProductInfo]) -> None:
    """Correct and incorrect clips side by side."""
    good = [c for c in clips if c.correct]
    bad = [c for c in clips if not c.correct]
    left, right = st.columns(2)
    with left, st.container(border=True):
        st.markdown(f"**:green[:material/check_circle:] Correct · {len(good)}**")
        for c in good:
            st.markdown(f"{code(c.video_id)} {product_name(infos, c.truth, c.video_id)} · {_frames_right(c)}")
        if not good:
            st.caption("No clip was matched correctly.")
    with right, st.container(border=True):
        st.markdown(f"**:red[:material/cancel:] Incorrect · {len(bad)}**")
        for c in bad:
            if c.truth is None:  # an absent product's clip: no product is right for it
                st.markdown(f"{code(c.video_id)} {product_name(infos, c.top, c.video_id)} chosen · the clip shows a "
                            "product not in the catalogue")
                continue
            rank = f"true product ranked {c.truth_rank}" if c.truth_rank else "true product not ranked"
            st.markdown(f"{code(c.video_id)} {product_name(infos, c.top, c.video_id)} instead of "
                        f"{product_name(infos, c.truth, c.video_id)} · {rank} · {_frames_right(c)}")
        if not bad:
            st.caption("No errors: every clip's top product is the true one.")


def _frames_right(c: ClipComparison) -> str:
    right = sum(f.correct for f in c.frames)
    return f"{right} of {len(c.frames)} frames right"


def plain_name(infos: dict[str, ProductInfo], pid: str, clip: str = "") -> str:
    """A product's display name; beside a clip of the same id, an unnamed product is its category alone (the id
    once: "`000117` short skirt", not "000117 000117 · short skirt")."""
    if pid not in infos:
        return pid
    info = infos[pid]
    if pid == clip and not has_own_name(info.name, pid, info.category):
        return category_label(info.category) or pid
    return display_name(info.name, pid, info.category)


def product_name(infos: dict[str, ProductInfo], pid: str | None, clip: str = "") -> str:
    if pid is None:
        return "*nothing*"
    return f"**{md(plain_name(infos, pid, clip))}**"


def clip_label(c: ClipComparison, infos: dict[str, ProductInfo]) -> str:
    mark = "✓" if c.correct else "✗"
    truth = plain_name(infos, c.truth, c.video_id) if c.truth else "a product not in the catalogue"
    return f"{mark} {c.video_id} · {truth}"


def _side_caption(label: str, side: Side | None, infos: dict[str, ProductInfo]) -> str:
    if side is None or side.product_id is None:
        return f"{label}: none"
    name = plain_name(infos, side.product_id)
    sim = f" · {side.similarity:.3f}" if side.similarity is not None else ""
    where = "" if side.from_neighbours else " · cover image"
    return f"{label}: {name}{sim}{where}"


def frame_card(frame: FrameComparison, query: bytes | None, infos: dict[str, ProductInfo]) -> None:
    with st.container(border=True):
        verdict = (":green-badge[:material/check: right product]" if frame.correct
                   else ":red-badge[:material/close: wrong product]")
        cat = category_label(frame.category)
        where = f"**Frame #{frame.frame_index}** · {frame.time_s:.1f} s" + (f" · {md(cat)}" if cat else "")
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
