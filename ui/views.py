"""Result views drawn by the pages: a clip's match, an evaluation report."""

from __future__ import annotations

import html
import json
from pathlib import Path

import streamlit as st

from engine.pipeline.engine import STAGES

from engine.io.catalogue import Catalogue
from engine.config import Settings
from engine.types import EvalReport

from engine.types import FrameVote, MatchResult, Product, ProductScore, RegionRef

from .correcting import correction_control, frame_correction
from .charts import (not_in_catalogue_clips, clip_table, margin_chart, open_set_line, rank_chart, report_notes, run_line,
                     uncertain_clips, votes_heatmap)
from engine.index.corrections import SOURCE
from ui.text import md

from .components import category_label, image_or_placeholder, product_card
from .inspection import FrameComparison, ProductInfo, compare_frame
from .matching import Analysis, ClipSource
from .media import annotated_image, source_crops, thumb
from .names import bare_name, product_label

CARDS_PER_ROW = 5
FRAMES_PER_ROW = 5
CROP = (240, 240)  # a frame's query region and its catalogue match
CARD_SIDE = 400  # a product card's annotated photo


def product_names(catalogue: Catalogue | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    names = dict(extra or {})
    if catalogue is not None:
        names.update({pid: p.name for pid, p in catalogue.products.items()})
    return names


def correction_key(source: ClipSource, frame_index: int | None = None) -> str:
    """The widget key of a result's correction control: the clip's digest, and the frame (None: the whole clip)."""
    return f"match.correct.{source.sha256[:16]}.{'clip' if frame_index is None else frame_index}"


def _rows(items: list, per_row: int) -> list[list]:
    return [items[i : i + per_row] for i in range(0, len(items), per_row)]


def render_match(analysis: Analysis, catalogue: Catalogue, settings: Settings,
                 source: ClipSource | None = None) -> None:
    """A clip's match: verdict, summary, top products, each sampled frame with why it voted, votes per frame.
    ``source`` (the clip matched) gives each frame's query region; without it those crops show as missing."""
    result = analysis.result
    names = product_names(catalogue, {p.product_id: p.name for p in result.ranking})
    if result.top is None:
        st.warning(f"{md(analysis.clip_name)}: no catalogue product matched any sampled frame.",
                   icon=":material/search_off:")
        return
    _verdict_banner(analysis.clip_name, result, names, len(result.frames))
    _summary(analysis, catalogue)
    if source is not None:
        _player(source)
    _top_products(result, catalogue, settings)
    if source is not None:  # keyed by the clip's digest: another clip's result never shares this control's state
        # "not in the catalogue": the picker starts empty rather than offering the nearest product, which the verdict
        # has just said is not a match
        suggested = None if result.verdict.absent else result.top.product_id
        correction_control(settings, catalogue, source, None, correction_key(source), suggested)
    _sampled_frames(analysis, catalogue, names, settings, source)

    st.subheader("Votes per frame", anchor=False)
    st.caption("Similarity of every sampled frame (columns) to the leading products (rows); ★ marks the product "
               "each frame voted for.")
    st.plotly_chart(votes_heatmap(result, names, max_products=max(settings.search.top_k, 3)), width="stretch",
                    config={"displayModeBar": False}, key="match.votes")

    left, right = st.columns([1, 3], vertical_alignment="center")
    with left:
        st.download_button("Download result (JSON)", analysis.to_json(),
                           file_name=f"{Path(analysis.clip_name).stem}-match.json", mime="application/json",
                           icon=":material/download:", key="match.download", on_click="ignore")
    with right:
        t = result.timings
        st.caption(" · ".join(f"{k} {t[k]:.2f} s" for k in STAGES if k in t))


def _player(source: ClipSource) -> None:
    """The clip itself, playable (a browser plays MP4 and WebM; other containers may not play)."""
    with st.expander(f"Play {md(source.name)}", icon=":material/play_circle:"):
        left, right = st.columns([1, 2])
        with left:
            st.video(source.data if source.data is not None else source.path)
        right.caption("The sampled frames below are taken at the centres of equal parts of the clip; their times "
                      "are shown under each frame.")


def _top_products(result: MatchResult, catalogue: Catalogue, settings: Settings) -> None:
    st.subheader("Top products", anchor=False)
    st.caption("Ranked by evidence: each product's best similarity per frame, averaged over the sampled frames. "
               "Each card shows the catalogue photo whose region matched best in this clip, that region boxed.")
    n_frames = len(result.frames)
    ranking = list(result.ranking[: settings.search.top_k])
    for row in _rows(list(enumerate(ranking, 1)), CARDS_PER_ROW):
        cols = st.columns(CARDS_PER_ROW)
        for col, (rank, p) in zip(cols, row):
            with col:
                product = catalogue.products.get(p.product_id)
                category = product.category if product else ""
                product_card(rank, p.name, p.product_id, category, _card_image(p, product),
                             p.votes, n_frames, p.vote_share, p.best_similarity, p.mean_similarity,
                             absent=result.verdict.absent)


def _card_image(p: ProductScore, product: Product | None) -> bytes | None:
    """The catalogue photo whose region matched best in this clip (the engine records it in the ranking), with the
    region drawn under its own label: the annotation's category, which may be another garment of the photo than
    the product (white then); the cover photo when the product never was a candidate."""
    ref = card_region(p, product)
    if ref is None:
        return thumb(p.best_image or p.image_path)
    return annotated_image(ref.image_path, [ref], CARD_SIDE) or thumb(p.image_path)


def card_region(p: ProductScore, product: Product | None) -> RegionRef | None:
    """The region a product's card draws: the product's own sold-item region (instance_id != 0) in the photo that
    matched best, even when another garment of that photo (instance 0: the trousers under a top) matched; the
    matched box as the catalogue recorded it when the photo has no sold-item region; an unlabelled detected region
    when the catalogue has no record of it; None without one."""
    path, box = p.best_image, p.best_box
    if path is None or box is None:
        return None
    regions = product.regions if product is not None else ()
    own = next((r for r in regions if r.image_path == path and _same_box(r.box, box)), None)
    if own is not None and own.instance_id == 0:
        sold = next((r for r in regions if r.image_path == path and r.instance_id != 0), None)
        return sold or own
    return own or RegionRef(p.product_id, path, box, "", 1, "detected")


def _same_box(a: tuple[float, ...], b: tuple[float, ...], tolerance: float = 1.0) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) <= tolerance for x, y in zip(a, b))


def render_live(analysis: Analysis, catalogue: Catalogue, settings: Settings, crops: list[bytes | None]) -> None:
    """A live stream's match so far: verdict, top products, and the recent frames (``crops``: each frame's query
    region, drawn by the caller from the decoded frame)."""
    result = analysis.result
    names = product_names(catalogue, {p.product_id: p.name for p in result.ranking})
    if result.top is None:
        st.info("No catalogue product matched the frames so far.", icon=":material/search_off:")
        return
    _verdict_banner(analysis.clip_name, result, names, len(result.frames))
    _top_products(result, catalogue, settings)
    _sampled_frames(analysis, catalogue, names, settings, None, crops, "Recent frames")


def _sampled_frames(analysis: Analysis, catalogue: Catalogue, names: dict[str, str], settings: Settings,
                    source: ClipSource | None, crops: list[bytes | None] | None = None,
                    title: str = "Sampled frames") -> None:
    result = analysis.result
    st.subheader(title, anchor=False)
    st.caption("White: the detected person, or an inset outline tagged \"whole frame\" when nobody is detected. "
               "Violet: the garment window that decided the vote. Under each frame: that window (query) beside the "
               "catalogue region of the voted product it matched best, with its category and their similarity.")
    infos = {pid: ProductInfo(p.name, p.category, p.cover_image) for pid, p in catalogue.products.items()}
    rows = [compare_frame(f, None, infos) for f in result.frames]
    n_sampled = int(result.settings.get("frames") or settings.detection.frames)
    requests = [(c.frame_index, c.query_box) for c in rows]
    if crops is None:
        crops = source_crops(source, n_sampled, requests, CROP) if source is not None else [None] * len(rows)
    items = list(zip(result.frames, analysis.frames, rows, crops))
    for row in _rows(items, FRAMES_PER_ROW):
        cols = st.columns(FRAMES_PER_ROW)
        for col, (vote, image, why, crop) in zip(cols, row):
            with col, st.container(border=True):
                _frame_card(vote, image, why, crop, names)
                if source is not None:
                    frame_correction(settings, catalogue, source, vote.frame_index,
                                     correction_key(source, vote.frame_index))


def _frame_card(vote: FrameVote, image: bytes | None, why: FrameComparison, crop: bytes | None,
                names: dict[str, str]) -> None:
    """A sampled frame with its vote, then the query region beside the catalogue region it matched."""
    voted = product_label(names.get(vote.voted_product, vote.voted_product), vote.voted_product) \
        if vote.voted_product else "no vote"
    if image is not None:
        st.image(image, width="stretch")
    # fixed-height lines (ellipsis, full text on hover): every card of a row keeps the same height
    when = f"#{vote.frame_index} · {vote.time_s:.1f} s" + ("" if image is not None else " · frame unavailable")
    st.html(f'<div class="lm-meta"><div class="lm-line">{html.escape(when)}</div><div class="lm-line" '
            f'title="{html.escape(voted)}">voted for <b>{html.escape(voted)}</b></div></div>')
    chosen = why.chosen
    if chosen.product_id is None:
        return
    left, right = st.columns(2, gap="small")
    with left:
        image_or_placeholder(crop, "query")
    with right:
        where = "catalogue" if chosen.from_neighbours else "cover"
        where = "example" if chosen.source == SOURCE else where  # a livestream example (a correction)
        image_or_placeholder(thumb(chosen.image_path, chosen.box, CROP), where)
    category = category_label(why.category) or "garment"  # the matched region's own category, not the product's
    similarity = f"similarity {chosen.similarity:.2f}" if chosen.similarity is not None else "&nbsp;"
    st.html(f'<div class="lm-meta"><div class="lm-line" title="{html.escape(category)}">region: '
            f'{html.escape(category)}</div><div class="lm-line">{similarity}</div></div>')


def _verdict_banner(clip: str, result: MatchResult, names: dict[str, str], n_frames: int) -> None:
    """Green when the top product clearly leads; amber, with the runner-up named, when it is close; grey, the
    nearest products named "closest, not a match", when no product is consistently nearest (engine.verdict). Every
    count of votes says whose it is."""
    top, verdict = result.top, result.verdict
    own = (f"{top.votes} of {n_frames} sampled frame{'s' if n_frames != 1 else ''} voted for it "
           f"(evidence {top.mean_similarity:.3f})")
    if verdict.confident:
        st.success(f"{_bold_label(top.name, top.product_id)} is shown in **{md(clip)}**: {own}.",
                   icon=":material/check_circle:")
        return
    if verdict.absent:  # grey: no product of the catalogue is consistently nearest
        closest = ", ".join(_bold_label(names.get(pid, pid), pid) for pid in verdict.closest)
        s = verdict.signals
        with st.container(border=True):
            st.markdown(f":gray[:material/block: **Not in the catalogue.** Closest in **{md(clip)}**: {closest}, not a "
                        f"match. The frames do not agree on one product ({top.votes} of {n_frames} voted for the "
                        f"nearest) and {s.members - s.members_agree} of {s.members} models rank another first.]")
        return
    second = result.ranking[1]
    runner_up = _bold_label(names.get(second.product_id, second.name), second.product_id)
    st.warning(f"**Uncertain.** Most likely {_bold_label(top.name, top.product_id)} in **{md(clip)}**: {own}. But "
               f"{runner_up} is close: {second.votes} of {n_frames} voted for it (evidence "
               f"{second.mean_similarity:.3f}; margin {verdict.evidence_margin:+.3f}).", icon=":material/help:")


def _bold_label(name: str, product_id: str) -> str:
    """**name** (id), the id once."""
    bare = bare_name(name, product_id)
    return f"**{md(bare)}** ({md(product_id)})" if bare else f"**{md(product_id)}**"


def _summary(analysis: Analysis, catalogue: Catalogue) -> None:
    result = analysis.result
    regions = sum(len(f.regions) for f in result.frames)
    detected = sum(1 for f in result.frames if f.region_source == "detector")
    cols = st.columns(4)
    cols[0].metric("Frames sampled", len(result.frames), border=True)
    cols[1].metric("Regions searched", regions, border=True,
                   help=f"{detected} of {len(result.frames)} frames had a detected person; "
                        "the others were searched as a whole.")
    cols[2].metric("Catalogue products", len(catalogue.products), border=True)
    cols[3].metric("Processing time", f"{result.timings.get('total', 0.0):.1f} s", border=True)


# --------------------------------------------------------------------------------------------- evaluation
def render_report(report: EvalReport, names: dict[str, str]) -> None:
    m = report.metrics
    uncertain = uncertain_clips(report)
    cols = st.columns(5)
    cols[0].metric("Top-1 accuracy", f"{m.top1:.0%}", border=True,
                   help="Clips whose first-ranked product is the true one.")
    cols[1].metric("Top-5 accuracy", f"{m.top5:.0%}", border=True,
                   help="Clips whose true product is among the first five.")
    cols[2].metric("MRR", f"{m.mrr:.3f}", border=True, help="Mean reciprocal rank of the true product.")
    absent = sum(o.truth is None for o in report.clips)
    cols[3].metric("Clips scored", m.clips, border=True,
                   delta=f"+{absent} absent" if absent else None,
                   delta_color="off", help="Clips whose product is in the catalogue; clips of a product the catalogue "
                   "does not have are counted apart (absent-product clips): no product is the right answer for them.")
    grey = not_in_catalogue_clips(report)
    cols[4].metric("Confident clips", f"{len(report.clips) - len(uncertain) - len(grey)} of {len(report.clips)}",
                   border=True,
                   help="Green: every model ranks the top product first and it leads clearly on votes. The others are "
                        "amber (uncertain, most likely X) or grey (not in the catalogue: the nearest products, "
                        "not a match).")
    st.markdown("**Run with** · " + md(run_line(report.settings, report.index))
                + (f" · uncertain: {md(', '.join(uncertain))}" if uncertain else "")
                + (f" · not in catalogue: {md(', '.join(grey))}" if grey else ""))
    if report.open_set:
        st.markdown("**Open set** (each clip with its own product removed from the catalogue: any answer is wrong) · "
                    + open_set_line(report))

    left, right = st.columns(2)
    with left:
        st.markdown("**Rank of the true product per clip**")
        st.plotly_chart(rank_chart(report), width="stretch", config={"displayModeBar": False}, key="eval.rank")
    with right:
        st.markdown("**Vote margin of the true product**")
        st.plotly_chart(margin_chart(report), width="stretch", config={"displayModeBar": False}, key="eval.margin")

    st.markdown("**Clips**")
    table = clip_table(report, names)
    st.dataframe(table, hide_index=True, width="stretch", column_config=CLIP_COLUMNS,
                 column_order=[c for c in table.columns if c in CLIP_COLUMNS])
    stem = Path(report.dataset).name or "evaluation"
    csv_col, json_col, _ = st.columns([1, 1, 3])
    csv_col.download_button("Clips (CSV)", table.to_csv(index=False).encode("utf-8"), file_name=f"{stem}-clips.csv",
                            mime="text/csv", icon=":material/download:", key="eval.download.csv", on_click="ignore",
                            width="stretch")
    json_col.download_button("Full report (JSON)", json.dumps(report.to_dict(), ensure_ascii=False, indent=1),
                             file_name=f"{stem}-report.json", mime="application/json", icon=":material/download:",
                             key="eval.download.json", on_click="ignore", width="stretch")
    notes = report_notes(report)
    if notes:
        with st.expander(f"{len(notes)} note(s) from the run", icon=":material/info:"):
            for n in notes:
                st.markdown(f"- {md(n)}")
    idx = report.index or {}
    when = report.created_at.replace("T", " ")[:16] if report.created_at else "at an unknown time"
    st.caption(f"Evaluated {when} · {idx.get('n_products', '?')} products, "
               f"{idx.get('n_items', '?')} regions indexed · "
               f"embedder {md(idx.get('embedder') or idx.get('model_key', '?'))} · "
               f"detector {md(report.settings.get('detector', '?'))}")


# Widths in pixels: the shown columns fit the page's 940 px at a 1400 px window without scrolling sideways, and a
# name with its id ("Green checked long-sleeve top (900008)") uncut. The vote margin of the truth is left to its
# chart above (and the CSV), to make room for the names.
CLIP_COLUMNS = {
    "clip": st.column_config.TextColumn("clip", width=58),
    "result": st.column_config.TextColumn("result", width=64),
    "true product": st.column_config.TextColumn("true product", width=219,
                                                help="Its name; with its id when it is not the clip's own."),
    "top-1": st.column_config.TextColumn("top-1", width=244),
    "rank of truth": st.column_config.TextColumn("rank", width=38,
                                                 help="Rank of the true product in the clip's ranking "
                                                      "(– when it is not ranked or not in the catalogue)."),
    "votes": st.column_config.TextColumn("votes", width=50, help="Frames voting for the top-1 product."),
    "sure": st.column_config.TextColumn("verdict", width=104, help="confident; uncertain when the runner-up is "
                                        "close or the models disagree; not in catalogue when no product is "
                                        "consistently nearest."),
    "evidence margin": st.column_config.NumberColumn(
        "lead", format="%+.3f", width=52,
        help="The top product's evidence (mean best similarity per frame) minus the runner-up's."),
    "evidence": st.column_config.NumberColumn("evidence", format="%.3f", width=58,
                                              help="The top-1 product's evidence: its best similarity per frame, "
                                                   "averaged over the sampled frames (the ranking key)."),
    "time (s)": st.column_config.NumberColumn("time", format="%.1f s", width=46),
}


def category_names(catalogue: Catalogue) -> list[str]:
    return sorted({category_label(p.category) for p in catalogue.products.values() if p.category})
