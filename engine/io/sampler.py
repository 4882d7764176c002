"""Frames sampled along a whole video at a set interval, without keeping them: a file is read by seeking to each
sampled frame (``SeekReader``), a URL or a file without a frame count sequentially, decoding only the kept frames
(``engine.io.stream.StreamReader``). Both give ``next_frames(n)``, ``ended``, ``label`` and ``close``.

Which is faster depends on how many frames lie between two samples (docs/timeline.md): seeking decodes from the
key frame before each sample, a sequential reader decodes every frame. With 40 frames between samples (every 2 s
of 20 fps video) seeking took 0.13 s against 0.21 s for a 20-second clip; with 20 or fewer, sequential reading
won (0.24 s against 0.64 s at every 1 s). ``decode="auto"`` seeks when samples are at least SEEK_MIN_GAP frames
apart and reads sequentially otherwise.
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.errors import VideoError
from engine.io.stream import StreamReader
from engine.io.video import VFR_TOLERANCE, is_url, open_capture, probe, to_rgb
from engine.types import Frame

DECODE_MODES = ("auto", "seek", "sequential")
SEEK_MIN_GAP = 30  # frames between samples from which seeking is faster than reading every frame


class SeekReader:
    """Frames at 0, every_s, 2 every_s, ... of a file, by seeking to each; ``ended`` once past the last frame or
    when a frame cannot be read (a truncated file: the frames read so far stand)."""

    def __init__(self, path: str | Path, every_s: float, frame_count: int, fps: float) -> None:
        if every_s <= 0:
            raise VideoError("the sampling interval must be positive")
        self.path, self.every_s, self.frame_count, self.fps = str(path), float(every_s), int(frame_count), float(fps)
        self._cap = open_capture(path)
        self._k = 0  # the next sample's number
        self._in_order: StreamReader | None = None  # after a variable frame rate is found: read in order
        self.ended = False
        self.broken = ""  # why reading stopped before the end ("" when it did not)
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return Path(self.path).name

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps

    def next_frames(self, n: int = 1) -> list[Frame]:
        import cv2

        kept: list[Frame] = []
        with self._lock:
            while not self.ended and len(kept) < n:
                if self._in_order is not None:
                    more = self._in_order.next_frames(n - len(kept))
                    kept += more
                    if not more or self._in_order.ended:
                        self._close_locked()
                    continue
                index = int(round(self._k * self.every_s * self.fps))
                if index >= self.frame_count:
                    self._close_locked()
                    break
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                ok, bgr = self._cap.read()
                if not ok or bgr is None:
                    self.broken = f"{self.label}: no frame could be read at {index / self.fps:.1f} s"
                    self._close_locked()
                    break
                t = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
                if abs(t - index / self.fps) > VFR_TOLERANCE / self.fps:  # a variable frame rate: the frame
                    self._in_order = StreamReader(self.path, self.every_s, start_s=index / self.fps)  # numbers
                    self._cap.release()  # say nothing of time; read on in order from this sample's time
                    continue
                kept.append(Frame(index, round(index / self.fps, 3), to_rgb(bgr)))  # = t, within half a frame
                self._k += 1
        return kept

    def _close_locked(self) -> None:
        self.ended = True
        self._cap.release()
        if self._in_order is not None:
            self._in_order.close()

    def close(self) -> None:
        with self._lock:
            self._close_locked()


def open_sampler(source: str | Path, every_s: float, decode: str = "auto") -> tuple[SeekReader | StreamReader, float]:
    """A reader of ``source`` sampled every ``every_s`` seconds, and the source's duration (0.0: unknown, as for a
    live stream). ``decode``: "seek" (files with a frame count), "sequential", or "auto" (seek in a file whose
    samples are at least SEEK_MIN_GAP frames apart, else sequential)."""
    if decode not in DECODE_MODES:
        raise VideoError(f"decode must be one of {', '.join(DECODE_MODES)}, not {decode!r}")
    if every_s <= 0:
        raise VideoError("the sampling interval must be positive")
    if is_url(source):
        return StreamReader(source, every_s), 0.0
    info = probe(source)
    seekable = info.frame_count > 0 and info.fps > 0
    if decode == "auto":
        decode = "seek" if seekable and every_s * info.fps >= SEEK_MIN_GAP else "sequential"
    if decode == "seek" and seekable:
        return SeekReader(source, every_s, info.frame_count, info.fps), info.duration_s
    if decode == "seek":
        raise VideoError(f"{Path(source).name}: the container gives no frame count to seek by; use sequential")
    return StreamReader(source, every_s), info.duration_s
