"""Result views drawn by the pages: a clip's match, an evaluation report."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.pipeline.engine import STAGES

from engine.io.catalogue import Catalogue
from engine.config import Settings
from engine.types import EvalReport

from .charts import clip_table, margin_chart, rank_chart, votes_heatmap
from .components import category_label, product_card
from .matching import Analysis
from .media import thumb

CARDS_PER_ROW = 5
FRAMES_PER_ROW = 5


def product_names(catalogue: Catalogue | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    names = dict(extra or {})
    if catalogue is not None:
        names.update({pid: p.name for pid, p in catalogue.products.items()})
    return names


def _rows(items: list, per_row: int) -> list[list]:
    return [items[i : i + per_row] for i in range(0, len(items), per_row)]


def render_match(analysis: Analysis, catalogue: Catalogue, settings: Settings) -> None:
    result = analysis.result
    names = product_names(catalogue, {p.product_id: p.name for p in result.ranking})
    n_frames = len(result.frames)
    top = result.top
    if top is None:
        st.warning(f"{analysis.clip_name}: no catalogue product matched any sampled frame.",
                   icon=":material/search_off:")
        return
    _verdict_banner(analysis.clip_name, result, names, n_frames)
    _summary(analysis, catalogue)

    st.subheader("Top products", anchor=False)
    ranking = list(result.ranking[: settings.search.top_k])
    for row in _rows(list(enumerate(ranking, 1)), CARDS_PER_ROW):
        cols = st.columns(CARDS_PER_ROW)
        for col, (rank, p) in zip(cols, row):
            with col:
                product = catalogue.products.get(p.product_id)
                product_card(rank, p.name, p.product_id, product.category if product else "", thumb(p.image_path),
                             p.votes, n_frames, p.vote_share, p.best_similarity, p.mean_similarity)

    st.subheader("Sampled frames", anchor=False)
    st.caption("White: the detected person, or the whole frame when nobody is detected. Violet: the garment "
               "window that matched best, with its category and similarity. Below each frame: the product it "
               "voted for.")
    frames = list(zip(result.frames, analysis.frames))
    for row in _rows(frames, FRAMES_PER_ROW):
        cols = st.columns(FRAMES_PER_ROW)
        for col, (vote, image) in zip(cols, row):
            with col:
                voted = names.get(vote.voted_product, vote.voted_product) if vote.voted_product else "no vote"
                caption = f"#{vote.frame_index} · {vote.time_s:.1f} s → {voted}"
                if vote.voted_product:
                    caption += f" ({vote.vote_similarity:.2f})"
                if image is not None:
                    st.image(image, caption=caption, width="stretch")
                else:
                    st.caption(caption + " · frame unavailable")

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


def _verdict_banner(clip: str, result, names: dict[str, str], n_frames: int) -> None:
    """Green when the top product clearly leads; amber, with the runner-up named, when it is close."""
    top, verdict = result.top, result.verdict
    evidence = f"{top.votes} of {n_frames} sampled frames vote for it, evidence {top.mean_similarity:.3f}"
    if verdict.confident:
        st.success(f"**{top.name}** ({top.product_id}) is shown in **{clip}**: {evidence}.",
                   icon=":material/check_circle:")
        return
    second = result.ranking[1]
    st.warning(f"**Uncertain.** Most likely **{top.name}** ({top.product_id}) in **{clip}**, but "
               f"**{names.get(second.product_id, second.name)}** ({second.product_id}) is close: {evidence}; "
               f"the runner-up has {second.votes} votes, evidence {second.mean_similarity:.3f} "
               f"(margin {verdict.evidence_margin:+.3f}).", icon=":material/help:")


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
    cols = st.columns(4)
    cols[0].metric("Top-1 accuracy", f"{m.top1:.0%}", border=True,
                   help="Clips whose first-ranked product is the true one.")
    cols[1].metric("Top-5 accuracy", f"{m.top5:.0%}", border=True,
                   help="Clips whose true product is among the first five.")
    cols[2].metric("MRR", f"{m.mrr:.3f}", border=True, help="Mean reciprocal rank of the true product.")
    cols[3].metric("Clips scored", m.clips, border=True)

    left, right = st.columns(2)
    with left:
        st.markdown("**Rank of the true product per clip**")
        st.plotly_chart(rank_chart(report), width="stretch", config={"displayModeBar": False}, key="eval.rank")
    with right:
        st.markdown("**Vote margin of the true product**")
        st.plotly_chart(margin_chart(report), width="stretch", config={"displayModeBar": False}, key="eval.margin")

    st.markdown("**Clips**")
    table = clip_table(report, names)
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={
            "clip": st.column_config.TextColumn("clip", width="small"),
            "result": st.column_config.TextColumn("result", width="small"),
            "true product": st.column_config.TextColumn("true product", width="medium"),
            "top-1": st.column_config.TextColumn("top-1", width="medium"),
            "rank of truth": st.column_config.NumberColumn("rank", format="%d", width="small",
                                                           help="Rank of the true product in the clip's ranking."),
            "votes": st.column_config.TextColumn("votes", width="small", help="Frames voting for the top-1 product."),
            "margin": st.column_config.NumberColumn("margin", format="%+d", width="small",
                                                    help="Frames voting for the truth minus its best rival."),
            "similarity": st.column_config.NumberColumn("similarity", format="%.2f", width="small",
                                                        help="Best similarity of the top-1 product."),
            "time (s)": st.column_config.NumberColumn("time", format="%.1f s", width="small"),
        },
    )
    notes = list(report.skipped) + list(report.problems)
    if notes:
        with st.expander(f"{len(notes)} note(s) from the run", icon=":material/info:"):
            for n in notes:
                st.markdown(f"- {n}")
    idx = report.index or {}
    when = report.created_at.replace("T", " ")[:16] if report.created_at else "at an unknown time"
    st.caption(f"Evaluated {when} · {idx.get('n_products', '?')} products, "
               f"{idx.get('n_items', '?')} regions indexed · "
               f"embedder {idx.get('embedder') or idx.get('model_key', '?')} · "
               f"{report.settings.get('frames', '?')} frames per clip")


def category_names(catalogue: Catalogue) -> list[str]:
    return sorted({category_label(p.category) for p in catalogue.products.values() if p.category})
