"""Plotly figures and tables of match results and evaluation reports (plain Python, no Streamlit)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd
import plotly.graph_objects as go

from engine.models.domain import SHIPPED_DIR
from engine.types import ClipOutcome, EvalReport
from engine.types import MatchResult
from ui.text import plot

from .names import bare_name

PRIMARY = "#4f46e5"
GOOD = "#10b981"
WARN = "#f59e0b"
BAD = "#ef4444"
MUTED = "#9ca3af"
INK = "#1f2433"
FONT = dict(family="Inter, 'Source Sans Pro', sans-serif", size=13, color=INK)


def short(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _layout(fig: go.Figure, height: int, **kwargs: Any) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), font=FONT, plot_bgcolor="white",
                      paper_bgcolor="white", **kwargs)
    return fig


def votes_heatmap(result: MatchResult, names: Mapping[str, str], max_products: int = 8) -> go.Figure:
    """Similarity of each frame to each top product (colour), with a star on the product each frame voted for."""
    products = [p.product_id for p in result.ranking[:max_products]]
    voted_extra = [f.voted_product for f in result.frames if f.voted_product and f.voted_product not in products]
    products += list(dict.fromkeys(voted_extra))
    labels = {pid: heat_label(names.get(pid, pid), pid) for pid in products}
    x = [f"#{f.frame_index}<br>{f.time_s:.1f} s" for f in result.frames]
    z = [[f.product_similarity.get(pid, math.nan) for f in result.frames] for pid in products]
    text = [[("★ " if f.voted_product == pid else "") + (f"{v:.2f}" if not math.isnan(v) else "")
             for f, v in zip(result.frames, row)] for pid, row in zip(products, z)]
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=[labels[p] for p in products], text=text, texttemplate="%{text}", textfont=dict(size=12),
        colorscale=[[0.0, "#f4f5fb"], [0.5, "#a5b4fc"], [1.0, PRIMARY]], xgap=3, ygap=3,
        colorbar=dict(title=dict(text="similarity", side="right"), thickness=12, len=0.9),
        hovertemplate="%{y}<br>frame %{x}<br>similarity %{z:.3f}<extra></extra>",
    ))
    _layout(fig, 70 + 40 * len(products))
    # room for the row names, sized from their text (a 10-pixel margin cut them off)
    widest = max((len(t) for t in labels.values()), default=10)
    fig.update_layout(margin=dict(l=min(300, 16 + 6 * widest), r=10, t=10, b=10))
    fig.update_yaxes(autorange="reversed", showgrid=False, ticksuffix="  ", automargin=True)
    fig.update_xaxes(showgrid=False, side="bottom")
    return fig


def heat_label(name: str, product_id: str, n: int = 30) -> str:
    """A heat-map row name: the name (cut to ``n``) then the id, the id once."""
    bare = bare_name(name, product_id)
    return plot(f"{short(bare, n)} · {product_id}" if bare else product_id)


# --------------------------------------------------------------------------------------------- reports
WINDOW_NAMES = {"whole": "whole regions, no garment windows", "exhaustive": "every garment window (Exhaustive)",
                "hybrid": "the region exact, garment windows pooled (Standard)",
                "refined": "garment windows, best refined", "pooled": "pooled garment windows",
                "pose": "the region and body regions from keypoints (4 crops)",
                "hybrid-pose": "the region exact, garment windows pooled, and body regions from keypoints",
                "hybrid-pose-pooled": "the region exact, garment windows and body regions pooled"}


def run_settings(settings: Mapping[str, Any], index: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """How an evaluation ran (or will run), as (setting, value): garment windows, domain centring, ranking, frames.
    ``settings`` is Settings.flat(); centring is read from the index's model key when the index is known."""
    windows = WINDOW_NAMES.get(str(settings.get("windows", "")), str(settings.get("windows", "?")))
    if settings.get("garment_model"):
        windows += " · trained garment head"
    key = str((index or {}).get("model_key", ""))
    mean = str(settings.get("domain_mean", "auto"))
    if key:
        centring = "on" if "+centred" in key else "off"
    elif mean == "auto":  # on only where a livestream mean ships for the embedder (engine.models.domain.resolve)
        centring = "on" if _ships_mean(str(settings.get("embedder", ""))) else "off"
    else:
        centring = "off" if mean in ("none", "off", "") else "on"
    rank_by = str(settings.get("rank_by", "similarity"))
    ranking = "evidence, then votes" if rank_by == "similarity" else "votes"
    return [("windows", windows), ("domain centring", centring), ("ranked by", ranking),
            ("frames", f"{settings.get('frames', '?')} per clip")]


def _ships_mean(embedder: str) -> bool:
    """Whether a livestream mean is shipped for this embedder setting (what "auto" centring uses)."""
    return any(p.name.startswith(f"livestream-mean-{embedder}_") for p in SHIPPED_DIR.glob("livestream-mean-*.npy"))


def run_line(settings: Mapping[str, Any], index: Mapping[str, Any] | None = None) -> str:
    """``run_settings`` as one line: "windows: ... · domain centring: on · ranked by: ... · frames: 10 per clip"."""
    return " · ".join(f"{k}: {v}" for k, v in run_settings(settings, index))


def uncertain_clips(report: EvalReport) -> list[str]:
    """Clips whose answer is uncertain: the runner-up's evidence is close, or it leads on votes."""
    return [o.video_id for o in report.clips if o.result.verdict.level == "uncertain"]


def not_in_catalogue_clips(report: EvalReport) -> list[str]:
    """Clips whose verdict is "not in the catalogue": no product is consistently nearest."""
    return [o.video_id for o in report.clips if o.result.verdict.absent]


def open_set_line(report: EvalReport) -> str:
    """The open-set run in a line: "2 of 7 still confident (wrong), 3 not in catalogue, 2 uncertain"."""
    got = [o.result.verdict.level for o in report.open_set]
    return (f"{got.count('confident')} of {len(got)} still confident (wrong), {got.count('not in catalogue')} "
            f"not in catalogue, {got.count('uncertain')} uncertain")


def truth_margin(outcome: ClipOutcome) -> int | None:
    """Frames voting for the true product minus frames voting for its strongest rival (None without truth)."""
    if outcome.truth is None:
        return None
    votes = {p.product_id: p.votes for p in outcome.result.ranking}
    rival = max((v for pid, v in votes.items() if pid != outcome.truth), default=0)
    return votes.get(outcome.truth, 0) - rival


def report_notes(report: EvalReport) -> list[str]:
    """The run's notes, each once: a clip whose video is missing is named by the catalogue's note
    ("video/<id>.mp4: missing, clip skipped") and by the evaluation's ("<id>: video missing"); the latter is
    dropped then."""
    import re

    problems = list(report.problems)
    missing = {m.group(1) for n in problems if (m := re.match(r"video/(.+?)\.[^./]+: missing", n))}
    skipped = [n for n in report.skipped if not (n.endswith(": video missing") and n.split(":")[0] in missing)]
    return list(dict.fromkeys(skipped + problems))


def _short(pid: str | None, clip: str, names: Mapping[str, str]) -> str:
    """A product in a clip's row: its name without the id when it is the clip's own product (the clip column
    already shows that id), else name (id)."""
    if pid is None:
        return ""
    bare = bare_name(names.get(pid, pid), pid)
    if pid == clip:
        return bare or pid
    return f"{bare} ({pid})" if bare else pid


def clip_table(report: EvalReport, names: Mapping[str, str]) -> pd.DataFrame:
    """One row per clip: result, truth, top-1, rank of the truth, votes, margin, verdict, evidence margin, the top-1's
    evidence (the ranking key), time."""
    rows = []
    for o in report.clips:
        top = o.result.top
        n_frames = len(o.result.frames)
        rows.append({
            "clip": o.video_id,
            "result": "✓ correct" if o.correct else ("○ absent" if o.truth is None else "✗ wrong"),
            "true product": _short(o.truth, o.video_id, names) if o.truth else "not in the catalogue",
            "top-1": _short(o.top, o.video_id, names) if o.top else "no match",
            "rank of truth": "–" if o.truth_rank is None else str(o.truth_rank),
            "votes": f"{top.votes if top else 0} / {n_frames}",
            "margin": truth_margin(o),
            "sure": o.result.verdict.level,
            "evidence margin": o.result.verdict.evidence_margin,
            "evidence": top.mean_similarity if top else None,
            "time (s)": float(o.result.timings.get("total", 0.0)),
        })
    return pd.DataFrame(rows)


def rank_chart(report: EvalReport) -> go.Figure:
    """Rank of the true product in each clip's ranking (1 = correct); clips where it is not ranked at the bottom."""
    clips = [o for o in report.clips if o.truth is not None]
    worst = max([o.truth_rank or 0 for o in clips] + [5])
    missing = worst + 1
    ranks = [o.truth_rank for o in clips]
    colours = [GOOD if r == 1 else WARN if r and r <= 5 else BAD for r in ranks]
    fig = go.Figure(go.Scatter(
        x=[plot(o.video_id) for o in clips], y=[r or missing for r in ranks], mode="markers+text",
        text=[str(r) if r else "–" for r in ranks], textfont=dict(color="white", size=12),
        marker=dict(size=30, color=colours), showlegend=False,
        hovertemplate="clip %{x}<br>rank of the true product: %{text}<extra></extra>",
    ))
    fig.add_hrect(y0=0.5, y1=1.5, fillcolor=GOOD, opacity=0.08, line_width=0)
    _layout(fig, 300)
    ticks = list(range(1, worst + 1)) + [missing]
    fig.update_yaxes(autorange=False, range=[missing + 0.6, 0.4], tickvals=ticks,
                     ticktext=["1 · correct"] + [str(t) for t in ticks[1:-1]] + ["not ranked"],
                     title="rank of the true product", gridcolor="#eef0f6", zeroline=False)
    fig.update_xaxes(type="category", title="clip")
    return fig


def margin_chart(report: EvalReport) -> go.Figure:
    """Vote margin of the true product per clip: positive when it won, by how many frames."""
    clips = [(o, truth_margin(o)) for o in report.clips if o.truth is not None]
    colours = [GOOD if (m or 0) > 0 else BAD if (m or 0) < 0 else WARN for _, m in clips]
    fig = go.Figure(go.Bar(
        x=[plot(o.video_id) for o, _ in clips], y=[m for _, m in clips], marker_color=colours,
        text=[f"{m:+d}" for _, m in clips], textposition="outside", cliponaxis=False,
        hovertemplate="clip %{x}<br>margin %{y:+d} frames<extra></extra>",
    ))
    _layout(fig, 300, bargap=0.55)
    fig.update_yaxes(title="frames: truth − best rival", zeroline=True, zerolinecolor="#c7cad6", gridcolor="#eef0f6")
    fig.update_xaxes(type="category", title="clip")
    return fig


def risk_coverage_chart(report: EvalReport) -> go.Figure:
    """The verdict's risk-coverage curve: answering only the clips the verdict is surest of (confident first, then
    uncertain, then not in the catalogue; within each, the larger vote lead first), the share of answered clips that
    are wrong, against the share answered. Each point is coloured by its clip's outcome."""
    from engine.eval.nested import risk_coverage

    points = risk_coverage(report.clips)
    colours = {"confident": GOOD, "uncertain": WARN, "not in catalogue": MUTED}
    fig = go.Figure(go.Scatter(
        x=[0.0] + [p[0] for p in points], y=[0.0] + [p[1] for p in points], mode="lines+markers",
        line=dict(color=PRIMARY, shape="hv"),
        marker=dict(size=9, color=[PRIMARY] + [colours.get(p[3], PRIMARY) for p in points]),
        customdata=[[None, ""]] + [[p[2], p[3]] for p in points],
        hovertemplate="answered %{x:.0%} of clips<br>wrong among them %{y:.0%}<br>"
                      "%{customdata[1]}, vote lead %{customdata[0]:.2f}<extra></extra>",
    ))
    confident = [p[0] for p in points if p[3] == "confident"]
    if confident:
        fig.add_vline(x=max(confident), line_dash="dot", line_color=MUTED,
                      annotation_text="confident verdicts", annotation_position="top left")
    fig.add_hrect(y0=0, y1=0.1, fillcolor=GOOD, opacity=0.08, line_width=0)
    _layout(fig, 300)
    fig.update_xaxes(title="coverage: share of clips answered", range=[0, 1.02], tickformat=".0%", gridcolor="#eef0f6")
    fig.update_yaxes(title="risk: share answered wrongly", range=[-0.02, 1.02], tickformat=".0%", gridcolor="#eef0f6")
    return fig
