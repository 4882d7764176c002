"""A live source read as it plays: an HTTP(S) file, an HLS playlist, an RTSP or RTMP stream, through OpenCV's
FFmpeg backend, keeping one frame every ``every_s`` seconds of stream time.

Stream time is the container's timestamp of each frame (``CAP_PROP_POS_MSEC``; carried on across timestamps
that jump back, as HLS segments may), or the frame number over the frame rate when a source gives no
timestamps, so a file served over HTTP is sampled like the live stream it
stands for, without waiting for the wall clock. Opening or reading gives up after STREAM_TIMEOUT_MS with a
one-line VideoError.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from engine.errors import VideoError
from engine.io import egress
from engine.io.fetch import Progress, readable, relabel
from engine.io.urlpolicy import StreamError, StreamPolicy
from engine.io.video import is_url, no_video_message, open_capture, to_rgb
from engine.types import Frame



class StreamReader:
    """Sampled frames of a live source, a few at a time (``next_frames``), until it ends or is closed."""

    def __init__(self, url: str | Path, every_s: float, progress: Progress | None = None,
                 download_limit_mb: float | None = None, policy: StreamPolicy | None = None,
                 start_s: float = 0.0) -> None:
        """``every_s``: seconds of stream between kept frames (the setting ``stream_every``, 2 s by default).
        An HTTP(S) file its server cannot stream (no byte ranges) is fetched first, within the download limit
        (engine.io.fetch; ``progress`` gets ("download", fraction)), and read from the local copy, at the same
        stream times. ``policy``: the app's stream policy; when guarded, every address the stream leads to is
        checked (engine.io.egress), and a refusal is a StreamError that says why. ``start_s``: the stream time of
        the first frame to keep (a seeking reader that found a variable frame rate goes on from there)."""
        import cv2

        if every_s <= 0:
            raise VideoError("the sampling interval must be positive")
        self.url, self.every_s = str(url), float(every_s)
        self._local = contextlib.ExitStack()  # holds a fetched copy until close
        self._guard = egress.for_policy(policy) if policy is not None and policy.guarded else None
        self._mark = self._guard.mark() if self._guard is not None else 0
        try:  # a one-line VideoError for a dead, unreachable or too large source
            source = self._local.enter_context(readable(url, progress, download_limit_mb, policy))
            try:
                self._cap = open_capture(source, self._guard.ffmpeg_options(source) if self._guard else None)
            except VideoError as e:
                self._refused(e)
                raise relabel(e, source, self.url) from e
        except BaseException:
            self._local.close()
            raise
        self._fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
        self._read = 0  # frames decoded so far
        self._next_s = float(start_s)  # stream time of the next frame to keep
        self._last_s, self._offset = 0.0, 0.0  # timestamps that jump back (HLS segments from 0) are carried on
        self.ended = False
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.url if is_url(self.url) else Path(self.url).name

    def next_frames(self, n: int = 1, max_read: int = 2000) -> list[Frame]:
        """Up to ``n`` more sampled frames (fewer when the source ends; reading at most ``max_read`` frames)."""
        import cv2

        kept: list[Frame] = []
        with self._lock:
            for _ in range(max_read):
                if self.ended or len(kept) >= n:
                    break
                ok = self._cap.grab()  # decode only the frames that are kept
                if not ok:
                    self.close_locked()
                    break
                index = self._read
                self._read += 1
                pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
                t = (pos_ms / 1000.0 if pos_ms > 0 else index / self._fps) + self._offset
                if t < self._last_s:  # a discontinuity: continue the stream's time from the last frame
                    self._offset += self._last_s - t + 1.0 / self._fps
                    t = self._last_s + 1.0 / self._fps
                self._last_s = t
                if t + 1e-6 < self._next_s:
                    continue
                ok, bgr = self._cap.retrieve()
                if ok and bgr is not None:
                    kept.append(Frame(index, round(t, 3), to_rgb(bgr)))
                    self._next_s = t + self.every_s
        if not kept and self._read == 0:
            self._refused(None)
            raise VideoError(no_video_message(self.label) if is_url(self.url) else f"{self.label}: no video frame")
        return kept

    @property
    def refused(self) -> list[str]:
        """Why the egress proxy refused requests of this stream (a redirect or segment elsewhere), one line each."""
        return self._guard.refusals(self._mark) if self._guard is not None else []

    def _refused(self, cause: Exception | None) -> None:
        if self.refused:
            raise StreamError(f"{self.label}: refused, {self.refused[0]}") from cause

    def close_locked(self) -> None:
        self.ended = True
        self._cap.release()
        self._local.close()  # a fetched copy is removed (once)

    def close(self) -> None:
        with self._lock:
            self.close_locked()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
