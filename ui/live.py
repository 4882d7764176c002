"""The Match page's live stream: a URL, Start and Stop. While the stream runs, a fragment reruns itself every
second: it reads and matches the next sampled frames (engine.pipeline.live) and redraws the ranking over the
recent frames. The session keeps the live match and the drawings of its recent frames only."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import streamlit as st

from engine.config import Settings
from engine.errors import EngineError
from engine.io.catalogue import Catalogue
from engine.io.urlpolicy import StreamPolicy
from engine.pipeline.live import LiveMatch, LiveUpdate
from engine.render import annotate_frame, encode_jpeg, padded_crop, thumbnail
from ui import state
from ui.components import guard
from ui.progress import run_with_progress, staged
from ui.inspection import compare_frame
from ui.matching import FRAME_LONG_SIDE, Analysis
from ui.views import CROP, render_live
from ui.text import md

log = logging.getLogger(__name__)
LIVE_KEY = "match.live"
URL_KEY = "match.stream_url"
ERROR_KEY = "match.stream_error"
OPEN_KEY = "match.stream_open"  # a URL whose stream Start asked to open (opened in the script run, with progress)
REFRESH_S = 1.0  # the live view reruns every second while the stream runs
describe_open = staged({"": (0.0, 0.05, "Opening the stream…"),
                        "download": (0.05, 1.0, "The server cannot stream this file: downloading it…")})
FRAMES_PER_STEP = 2  # frames read and matched per rerun (a file served over HTTP arrives faster than it plays)


@dataclass
class LiveSession:
    """A stream being matched in this browser session, with its recent frames drawn (frame index -> JPEG)."""

    url: str
    live: LiveMatch
    running: bool = True
    stopped: bool = False  # by the person (Stop), not by the stream's end
    error: str | None = None
    drawn: dict[int, bytes] = field(default_factory=dict)
    crops: dict[int, bytes | None] = field(default_factory=dict)

    def keep(self, update: LiveUpdate) -> None:
        """Draw the frames this step added, and forget those that left the recent window."""
        images = {f.index: f.image for f in update.decoded}
        for vote in update.added:
            image = images.get(vote.frame_index)
            if image is None:
                continue
            self.drawn[vote.frame_index] = encode_jpeg(annotate_frame(image, vote, FRAME_LONG_SIDE))
            box = compare_frame(vote, None, {}).query_box
            self.crops[vote.frame_index] = encode_jpeg(thumbnail(padded_crop(image, box), CROP))
        recent = {v.frame_index for v in update.result.frames}
        for old in [i for i in self.drawn if i not in recent]:
            self.drawn.pop(old, None)
            self.crops.pop(old, None)

    def stop(self, by_user: bool = False) -> None:
        self.running = False
        self.stopped = self.stopped or by_user
        self.live.close()


def stream_panel(settings: Settings, catalogue: Catalogue) -> None:
    """The URL field, Start and Stop, and the live view of the stream this session matches. Start and Stop act in
    their callbacks, before the page is drawn, so both buttons are drawn in the state they lead to."""
    st.text_input("Stream URL", key=URL_KEY, placeholder="https://…/clip.mp4, https://…/live.m3u8 or rtsp://…",
                        help=f"An HTTP(S) file, an HLS playlist, or an RTSP/RTMP stream, read with FFmpeg. A frame "
                             f"is matched every {settings.detection.stream_every:g} s of stream. A shared server "
                             "opens only the addresses its operator allows (LIVEMATCH_STREAM_ALLOW).")
    session: LiveSession | None = st.session_state.get(LIVE_KEY)
    opening = st.session_state.pop(OPEN_KEY, None)
    running = (session is not None and session.running) or opening is not None
    start_col, stop_col, _ = st.columns([1, 1, 5])
    # not disabled while the field is empty: a URL typed and then Start clicked arrive in the same rerun
    start_col.button("Start", type="primary", icon=":material/play_arrow:", disabled=running,
                     key="match.stream_start", width="stretch", on_click=_start, args=(settings, catalogue))
    stop_col.button("Stop", icon=":material/stop:", disabled=not running or opening is not None,
                    key="match.stream_stop", width="stretch", on_click=_stop)  # not while it opens (downloads)
    if opening is not None:
        _open(settings, catalogue, opening)
        st.rerun()  # the buttons as they now are: Stop enabled, or Start again after an error
    error = st.session_state.pop(ERROR_KEY, None)
    if error:
        st.error(md(error), icon=":material/error:")
    if session is None:
        st.caption("Paste the address of a live stream or a video file on a server, then press Start. The "
                   "ranking is updated as the stream plays, over its most recent frames.")
        st.caption(sampling_note(settings))
        return
    st.fragment(_live_view, run_every=REFRESH_S if session.running else None)(session, catalogue, settings)


def _stop() -> None:
    session: LiveSession | None = st.session_state.get(LIVE_KEY)
    if session is not None:
        session.stop(by_user=True)


def _start(settings: Settings, catalogue: Catalogue) -> None:
    """Check the URL in the field and ask for it to be opened in this run (a one-line error kept for the page to
    show when it is not an address)."""
    old: LiveSession | None = st.session_state.pop(LIVE_KEY, None)
    if old is not None:
        old.stop()
    url = str(st.session_state.get(URL_KEY) or "").strip()
    if not url:
        st.session_state[ERROR_KEY] = "Paste a stream address first: http(s)://, rtsp:// or rtmp://."
        return
    try:  # only the schemes and hosts the operator allows (engine.io.urlpolicy, docs/security.md)
        url = stream_policy().check(url)
    except EngineError as e:
        st.session_state[ERROR_KEY] = str(e)
        return
    st.session_state[OPEN_KEY] = url


def _open(settings: Settings, catalogue: Catalogue, url: str) -> None:
    """Open the stream, with a progress bar while a file its server cannot stream is downloaded (engine.io.fetch,
    within the upload limit); a one-line error is kept for the page when it cannot be opened."""
    try:
        engine = state.get_engine(settings, catalogue)
        limit = float(st.get_option("server.maxUploadSize"))
        policy = stream_policy()
        live = run_with_progress(lambda progress: LiveMatch(engine, url, per_step=FRAMES_PER_STEP, progress=progress,
                                                            download_limit_mb=limit, policy=policy), describe_open)
    except EngineError as e:
        st.session_state[ERROR_KEY] = str(e)
        return
    except Exception:  # noqa: BLE001 - a traceback would reach the page
        log.exception("cannot start the stream %s", url)
        st.session_state[ERROR_KEY] = f"{url}: the stream could not be started; the details are in the server log."
        return
    st.session_state[LIVE_KEY] = LiveSession(url, live)


def _live_view(session: LiveSession, catalogue: Catalogue, settings: Settings) -> None:
    with guard(session.url):
        if session.running:
            try:
                update = session.live.step()
                session.keep(update)
            except EngineError as e:
                session.error = str(e)
                session.stop()
            except Exception:  # noqa: BLE001 - stop, instead of failing again at every refresh
                log.exception("live match of %s failed", session.url)
                session.error = f"{session.url}: matching the stream failed; the details are in the server log."
                session.stop()
            if not session.running or session.live.ended:
                session.running = False
                st.rerun()  # the whole page: the view stops refreshing itself, Stop is disabled
        _status(session)
        result = session.live.last
        if result is None:
            return
        analysis = Analysis(session.live.reader.label, result,
                            tuple(session.drawn.get(v.frame_index) for v in result.frames))
        render_live(analysis, catalogue, settings, [session.crops.get(v.frame_index) for v in result.frames])


def stream_policy() -> StreamPolicy:
    """The operator's stream policy for this server (every hop checked when it is guarded)."""
    return StreamPolicy(state.operator_settings().access.stream_allow, state.is_local_server())


def sampling_note(settings: Settings) -> str:
    """Why a stream and an upload of the same video can disagree: they are sampled at different frames."""
    every = settings.detection.stream_every
    return (f"A stream is sampled as it plays, from its start: one frame every {every:g} s (0 s, {every:g} s, "
            f"{2 * every:g} s, …). An uploaded clip is sampled at {settings.detection.frames} evenly spaced points "
            f"(the middle of each of {settings.detection.frames} equal parts). The same video can therefore get a "
            "different verdict as a stream and as an upload: the frames differ, the matching does not.")


def _status(session: LiveSession) -> None:
    seen = session.live.frames_seen
    if session.error:
        st.error(md(session.error), icon=":material/error:")
    elif session.running:
        st.info(f"**Live** · {seen} frames matched so far · the ranking pools the last "
                f"{session.live.recent.maxlen} frames.", icon=":material/sensors:")
    else:
        why = "Stopped" if session.stopped else "The stream ended"
        st.info(f"{why} after {seen} frames.", icon=":material/stop_circle:")
        st.caption(sampling_note(session.live.engine.settings))
