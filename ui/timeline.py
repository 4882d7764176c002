"""The Match page's product timeline, for clips longer than a minute (or when asked): which product, when (its chart:
ui.timeline_chart).

The timeline is built a few frames at a time (engine.pipeline.timeline.TimelineRun): while it runs, a fragment
reruns itself every half second, matches the next sampled frames for about a second and redraws the progress,
the chart and the table. Stop ends it and keeps the segments so far. The session keeps the run (its per-frame
evidence, no frames) and a small thumbnail of the sampled frames, thinned to at most MAX_THUMBS, so memory stays
bounded over hours of video. An upload is written to a private temporary folder for the run, removed when the
run is replaced (or the session is let go).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import pandas as pd
import streamlit as st

from engine.config import Settings
from engine.errors import EngineError
from engine.io.catalogue import Catalogue
from engine.io.fetch import private_folder, sweep_stale
from engine.io.video import probe
from engine.pipeline.timeline import Segment, Timeline, TimelineParams, TimelineRun, format_time
from engine.render import encode_jpeg, thumbnail
from engine.types import Frame, FrameVote
from ui import state
from ui.components import guard
from ui.matching import ClipSource, safe_filename
from ui.media import thumb
from ui.text import md
from ui.timeline_chart import headline, timeline_chart

log = logging.getLogger(__name__)
RUN_KEY = "match.timeline"
TOGGLE_KEY = "match.timeline_on"
DURATION_KEY = "match.durations"  # clip SHA-256 -> duration in seconds
LONG_CLIP_S = 60.0  # clips longer than this get a timeline by default
REFRESH_S = 0.5
STEP_BUDGET_S = 1.0  # frames matched per refresh: for about this long
MAX_THUMBS = 600
THUMB = (96, 160)  # (width, height) of a kept frame's thumbnail
UPLOAD_PREFIX = "livematch-timeline-"  # <tempdir>/livematch-timeline-<pid>-<random>/: an upload's copy for its run
UPLOAD_IDLE_S = 600.0  # a copy no run touched for this long belongs to a browser that left: swept


# ---------------------------------------------------------------------------------------------------- plain parts
def _data_url(jpeg: bytes | None) -> str | None:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode() if jpeg else None


def segment_table(timeline: Timeline, names: Mapping[str, str], frame_thumbs: Mapping[int, bytes],
                  product_thumbs: Mapping[str, bytes | None]) -> pd.DataFrame:
    """The segments, one row each, with a thumbnail of a frame of the segment and of the catalogue product."""
    rows = []
    for i, s in enumerate(timeline.segments, 1):
        rows.append({
            "#": i, "frame": _data_url(_segment_thumb(s, frame_thumbs)),
            "product": _data_url(product_thumbs.get(s.product_id)) if s.is_product else None,
            "start": format_time(s.start_s), "end": format_time(s.end_s),
            "name": names.get(s.product_id, s.name) if s.is_product else "no product",
            "id": s.product_id or "-", "evidence": s.mean_evidence, "margin": s.margin,
            "runner-up": s.runner_up or "-", "votes": f"{s.votes}/{s.frames}", "verdict": s.verdict,
        })
    return pd.DataFrame(rows)


def progress_text(covered_s: float, duration_s: float, eta_s: float | None, frames: int) -> str:
    """The progress line of a timeline being built: how far through the video (in video time), an estimate of the
    time left (once there is a pace to go by) and the frames matched so far."""
    where = f"{format_time(covered_s)} of {format_time(duration_s)}" if duration_s > 0 else format_time(covered_s)
    left = f" · about {format_time(eta_s)} left" if eta_s is not None and covered_s > 0 else ""
    return f"Building the timeline · {where} of video{left} · {frames} frames matched"


def _segment_thumb(s: Segment, frame_thumbs: Mapping[int, bytes]) -> bytes | None:
    """The kept thumbnail nearest the middle of the segment."""
    inside = [i for i in frame_thumbs if s.first <= i <= s.last]
    if not inside:
        return None
    middle = (s.first + s.last) / 2
    return frame_thumbs[min(inside, key=lambda i: abs(i - middle))]


# ---------------------------------------------------------------------------------------------------- the session
@dataclass
class TimelineSession:
    """A timeline being built in this browser session, for one clip (by its SHA-256)."""

    sha256: str
    name: str
    run: TimelineRun
    folder: Path | None = None  # the upload's private copy, removed by close()
    error: str | None = None
    thumbs: dict[int, bytes] = field(default_factory=dict)  # frame position -> JPEG
    stride: int = 1

    def release_upload(self) -> None:
        """The run no longer reads the upload's copy (it ended): remove it now, not when the session is dropped."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __post_init__(self) -> None:
        if self.folder is not None:  # removed with the session too, should it end without close()
            weakref.finalize(self, shutil.rmtree, str(self.folder), True)

    @property
    def running(self) -> bool:
        return not self.run.ended and self.error is None

    def keep(self, frames: list[Frame], votes: list[FrameVote]) -> None:
        """Thumbnails of the frames just matched, thinned (every other one dropped) past MAX_THUMBS."""
        first = len(self.run.frames) - len(frames)
        for i, f in enumerate(frames):
            if (first + i) % self.stride == 0:
                self.thumbs[first + i] = encode_jpeg(thumbnail(f.image, THUMB), quality=70)
        while len(self.thumbs) > MAX_THUMBS:
            self.stride *= 2
            self.thumbs = {k: v for k, v in self.thumbs.items() if k % self.stride == 0}

    def advance(self, budget_s: float | None = None) -> None:
        """Match the next frames: one step, then more while within ``budget_s`` (default STEP_BUDGET_S)."""
        budget = STEP_BUDGET_S if budget_s is None else budget_s
        t0 = time.perf_counter()
        if self.folder is not None:  # in use: an idle copy is swept (sweep_stale) once its browser has left
            with contextlib.suppress(OSError):
                os.utime(self.folder)
        while self.running:
            self.run.step(self.keep)
            if time.perf_counter() - t0 >= budget:
                break

    def close(self) -> None:
        self.run.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def clip_duration(source: ClipSource) -> float | None:
    """The clip's duration in seconds (remembered per clip in the session); None when it cannot be probed."""
    known = st.session_state.setdefault(DURATION_KEY, {})
    if source.sha256 not in known:
        try:
            with source.materialise() as path:
                known[source.sha256] = probe(path).duration_s
        except EngineError:
            known[source.sha256] = None
    return known[source.sha256]


def timeline_chosen(source: ClipSource) -> bool:
    """The "Product timeline" toggle, on by default for clips longer than a minute; whether it is on."""
    duration = clip_duration(source)
    long = duration is not None and duration > LONG_CLIP_S
    key = f"{TOGGLE_KEY}.{source.sha256[:16]}"
    length = f" ({format_time(duration)})" if duration else ""
    return st.toggle(f"Product timeline{length}: which product, when", value=long, key=key,
                     help="Samples frames along the whole clip and finds the stretches where each product is "
                          "shown. On by default for clips longer than a minute.")


def timeline_panel(settings: Settings, catalogue: Catalogue, source: ClipSource) -> None:
    """Start (automatically for a new clip), Stop, the progress, the chart, the table and the chosen segment."""
    session: TimelineSession | None = st.session_state.get(RUN_KEY)
    if session is None or session.sha256 != source.sha256:
        _start(settings, catalogue, source)
        session = st.session_state.get(RUN_KEY)
    if session is None:
        return
    left, right, _ = st.columns([1, 1, 5])
    left.button("Stop", icon=":material/stop:", disabled=not session.running, key="match.timeline_stop",
                width="stretch", on_click=_stop)
    right.button("Restart", icon=":material/replay:", disabled=session.running, key="match.timeline_restart",
                 width="stretch", on_click=_restart, args=(settings, catalogue, source))
    st.fragment(_view, run_every=REFRESH_S if session.running else None)(session, catalogue)


def _stop() -> None:
    session: TimelineSession | None = st.session_state.get(RUN_KEY)
    if session is not None:
        session.run.stop()


def _restart(settings: Settings, catalogue: Catalogue, source: ClipSource) -> None:
    _start(settings, catalogue, source)


def _start(settings: Settings, catalogue: Catalogue, source: ClipSource) -> None:
    old: TimelineSession | None = st.session_state.pop(RUN_KEY, None)
    if old is not None:
        old.close()
    folder = None
    sweep_stale(prefix=UPLOAD_PREFIX, idle_s=UPLOAD_IDLE_S)  # copies of sessions whose browser left, or process died
    try:
        if source.path is not None:
            path = Path(source.path)
        else:
            folder = private_folder(UPLOAD_PREFIX)  # mode 0700
            path = folder / safe_filename(source.name)
            path.write_bytes(source.data or b"")
        run = TimelineRun(state.get_engine(settings, catalogue), path, TimelineParams())
    except EngineError as e:
        st.error(md(e), icon=":material/error:")
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return
    st.session_state[RUN_KEY] = TimelineSession(source.sha256, source.name, run, folder)


def _view(session: TimelineSession, catalogue: Catalogue) -> None:
    with guard(session.name):
        was_running = session.running
        if was_running:
            try:
                session.advance()
            except EngineError as e:
                session.error = str(e)
            except Exception:  # noqa: BLE001 - stop, instead of failing again at every refresh
                log.exception("timeline of %s failed", session.name)
                session.error = f"{session.name}: building the timeline failed; the details are in the server log."
            if not session.running:
                session.release_upload()
                st.rerun()  # the whole page: Stop is disabled, Restart enabled, the view stops refreshing
        _render(session, catalogue)


def _render(session: TimelineSession, catalogue: Catalogue) -> None:
    run = session.run
    timeline = run.timeline()
    if session.error:
        st.error(md(session.error), icon=":material/error:")
    if session.running:
        st.progress(run.fraction, text=progress_text(run.covered_s, run.duration_s, run.eta_s, len(run.frames)))
    elif timeline.status == "complete":
        st.success(f"**{md(session.name)}**: {md(headline(timeline))}.", icon=":material/timeline:")
    else:
        st.warning(f"**{md(session.name)}**: {md(headline(timeline))}.", icon=":material/timeline:")
    if not timeline.segments:
        return
    names = {pid: p.name for pid, p in catalogue.products.items()}
    if not timeline.product_segments and not session.running:
        st.info("No catalogue product reached the evidence needed in any stretch of this clip: the timeline is "
                "empty.", icon=":material/search_off:")
    st.plotly_chart(timeline_chart(timeline, names, run.duration_s), width="stretch", config={"displayModeBar": False},
                    key="match.timeline_chart")
    products = {s.product_id: _product_thumb(catalogue, s.product_id) for s in timeline.product_segments}
    table = segment_table(timeline, names, session.thumbs, products)
    st.dataframe(table, hide_index=True, width="stretch", key="match.timeline_table", column_config={
        "frame": st.column_config.ImageColumn("frame", width="small"),
        "product": st.column_config.ImageColumn("product", width="small"),
        "evidence": st.column_config.NumberColumn(format="%.3f"),
        "margin": st.column_config.NumberColumn(format="%.3f"),
    })
    if not session.running:
        _chosen_segment(session, timeline, names)
        _downloads(session, timeline)


def _product_thumb(catalogue: Catalogue, product_id: str) -> bytes | None:
    product = catalogue.products.get(product_id)
    return thumb(product.cover_image, size=(96, 96)) if product is not None else None


def _chosen_segment(session: TimelineSession, timeline: Timeline, names: Mapping[str, str]) -> None:
    labels = {i: f"{i + 1} · {format_time(s.start_s)}–{format_time(s.end_s)} · "
                 f"{names.get(s.product_id, s.name) if s.is_product else 'no product'}"
              for i, s in enumerate(timeline.segments)}
    chosen = st.selectbox("Segment", list(labels), format_func=labels.get, key="match.timeline_segment",
                          help="Shows the sampled frames of a segment (a thumbnail of each kept frame).")
    if chosen is None or chosen >= len(timeline.segments):
        return
    s = timeline.segments[chosen]
    frames = timeline.frames
    kept = [i for i in sorted(session.thumbs) if s.first <= i <= s.last]
    if not kept:
        st.caption("No thumbnail was kept for this segment.")
        return
    st.caption(f"{len(kept)} of the segment's {s.frames} sampled frames"
               + (" (thumbnails are thinned on long videos)" if len(kept) < s.frames else ""))
    per_row = 8
    for row in range(0, len(kept), per_row):
        cols = st.columns(per_row)
        for col, i in zip(cols, kept[row: row + per_row]):
            f = frames[i]
            best = max(f.similarity.items(), key=lambda kv: kv[1]) if f.similarity else None
            caption = f"{format_time(f.time_s)}" + (f" · {md(best[0])} {best[1]:.2f}" if best else "")
            col.image(session.thumbs[i], caption=caption, width="stretch")


def _downloads(session: TimelineSession, timeline: Timeline) -> None:
    import json

    stem = Path(session.name).stem
    a, b, _ = st.columns([1, 1, 3])
    a.download_button("Segments (CSV)", timeline.to_csv(), file_name=f"{stem}-timeline.csv", mime="text/csv",
                      icon=":material/download:", key="match.timeline_csv", on_click="ignore")
    b.download_button("Timeline (JSON)", json.dumps(timeline.to_dict(), ensure_ascii=False, indent=1),
                      file_name=f"{stem}-timeline.json", mime="application/json", icon=":material/download:",
                      key="match.timeline_json", on_click="ignore")
