"""The timeline's chart and headline (the Match page's timeline, ui.timeline): one coloured band per segment along
the video's time, and the one-line outcome."""

from __future__ import annotations

from typing import Mapping

import plotly.graph_objects as go

from engine.pipeline.timeline import Timeline, format_time
from ui.charts import FONT, MUTED, short

PALETTE = ("#4f46e5", "#10b981", "#f59e0b", "#ef4444", "#0ea5e9", "#a855f7", "#14b8a6", "#f97316", "#64748b",
           "#84cc16", "#ec4899", "#6366f1")

def segment_colours(timeline: Timeline) -> dict[str, str]:
    """A colour per product in order of first appearance; "no product" is grey."""
    products = list(dict.fromkeys(s.product_id for s in timeline.segments if s.is_product))
    return {**{p: PALETTE[i % len(PALETTE)] for i, p in enumerate(products)}, "": MUTED}


def timeline_chart(timeline: Timeline, names: Mapping[str, str], total_s: float = 0.0) -> go.Figure:
    """One coloured band per segment along the video's time (the axis spans ``total_s``, the whole video, when
    known: a running timeline grows along it); the product's name, times and evidence on hover."""
    colours = segment_colours(timeline)
    fig = go.Figure()
    shown: set[str] = set()
    for i, s in enumerate(timeline.segments, 1):
        name = names.get(s.product_id, s.name) if s.is_product else "no product"
        fig.add_trace(go.Bar(
            x=[max(s.duration_s, 1e-3)], base=[s.start_s], y=["product"], orientation="h",
            marker=dict(color=colours[s.product_id], line=dict(color="white", width=1)),
            name=short(name, 28), legendgroup=s.product_id, showlegend=s.product_id not in shown,
            customdata=[[i, s.product_id or "-", format_time(s.start_s), format_time(s.end_s), s.mean_evidence,
                         s.margin, s.verdict]],
            hovertemplate=(f"<b>{short(name, 40)}</b><br>segment %{{customdata[0]}} · %{{customdata[1]}}<br>"
                           "%{customdata[2]} – %{customdata[3]}<br>evidence %{customdata[4]:.3f} · margin "
                           "%{customdata[5]:.3f} · %{customdata[6]}<extra></extra>"),
        ))
        shown.add(s.product_id)
    end = max(timeline.end_s, total_s, 1.0)
    step = _tick_step(end)
    ticks = [t * step for t in range(int(end // step) + 1)]
    # the legend above the band, the time axis (ticks and its title) below it: a legend under the band covered the
    # tick labels, and the band read as having no time axis
    fig.update_layout(barmode="overlay", height=200, margin=dict(l=10, r=10, t=10, b=10), font=FONT,
                      plot_bgcolor="white", paper_bgcolor="white", bargap=0.15,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    fig.update_xaxes(range=[0, end], tickvals=ticks, ticktext=[format_time(t) for t in ticks], showgrid=True,
                     gridcolor="#eef0f6", title=dict(text="time in the video (h:mm:ss)", standoff=6), automargin=True,
                     showline=True, linecolor="#c5cad8", ticks="outside")
    fig.update_yaxes(visible=False)
    return fig


def headline(timeline: Timeline) -> str:
    """The timeline's one-line outcome, with "1 product segment, 1 product" rather than the engine's
    "1 product segment(s), 1 product(s)"."""
    n_segments = len(timeline.product_segments)
    n_products = len({s.product_id for s in timeline.product_segments})
    counted = f"{n_segments} product segment(s), {n_products} product(s)"
    said = (f"{n_segments} product segment{'s' if n_segments != 1 else ''}, "
            f"{n_products} product{'s' if n_products != 1 else ''}")
    return timeline.message.replace(counted, said)


def _tick_step(end: float) -> float:
    for step in (5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if end / step <= 10:
            return float(step)
    return 7200.0
