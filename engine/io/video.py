"""Probe a clip and sample frames evenly, seeking to each one; clear errors for bad files.

A clip is a file, or a URL that OpenCV's FFmpeg backend reads (http(s), rtsp, rtmp, ... : a remote file or a
stream); a URL that cannot be opened within STREAM_TIMEOUT_MS is a one-line VideoError."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import VideoError
from engine.io.egress import ffmpeg_options
from engine.types import Frame

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
MAX_DECODE_SIDE = 1280  # frames are downscaled to this longer side before anything else
URL_SCHEMES = ("http://", "https://", "rtsp://", "rtmp://", "hls://")
STREAM_TIMEOUT_MS = 15_000  # opening or reading a URL gives up after this long
MAX_FRAME_PIXELS = 64_000_000  # as engine.io.images.MAX_PIXELS: a clip with larger frames is refused, not decoded
VFR_TOLERANCE = 0.5  # frames: a seeked frame whose stream time is further from its number / fps marks a VFR file


# FFmpeg's and OpenCV's own log lines ("Connection refused", "can't be used to capture by name") would follow our
# one-line error; both read these when the FFmpeg backend first starts. A user's own values are kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


def is_url(path: str | Path) -> bool:
    """Whether a clip is a URL (kept as text: a Path would fold its '//')."""
    return isinstance(path, str) and path.lower().startswith(URL_SCHEMES)


@dataclass(frozen=True)
class ClipInfo:
    """What the container says about a clip."""

    path: str
    frame_count: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def open_capture(path: str | Path, options: str | None = None):  # -> cv2.VideoCapture
    """An opened capture of a file or URL (the one place a clip is opened: clips, frames, live streams); a missing,
    empty, image or unreadable file, or a dead URL, is a one-line VideoError. ``options``: FFmpeg's options for
    this open (``key;value|key;value``: engine.io.egress's proxy and protocol whitelist)."""
    import cv2

    if is_url(path):
        with ffmpeg_options(options):
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                             cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"{path}: cannot open the stream (unreachable, or not a video)")
        return _bounded(cap, str(path))
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p.name}: file not found")
    if p.stat().st_size == 0:
        raise VideoError(f"{p.name}: the file is empty")
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        raise VideoError(f"{p.name}: this is an image, not a video")
    with ffmpeg_options(options):
        cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{p.name}: not a readable video")
    return _bounded(cap, p.name)


def _bounded(cap, label: str):  # -> cv2.VideoCapture
    """The capture, unless its frames are over MAX_FRAME_PIXELS (said in one line, before a frame is decoded)."""
    import cv2

    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if w * h > MAX_FRAME_PIXELS:
        cap.release()
        raise VideoError(too_many_pixels(label, w, h))
    return cap


def too_many_pixels(label: str, w: int, h: int) -> str:
    return (f"{label}: its frames are {w}×{h} ({w * h / 1e6:.0f} Mpx), over the {MAX_FRAME_PIXELS / 1e6:.0f} Mpx a "
            "video frame may have; scale it down first")


def probe(path: str | Path, label: str | Path | None = None) -> ClipInfo:
    """Read a clip's frame count, fps and size without decoding it (``label``: how errors name it; default the
    clip itself)."""
    import cv2

    cap = open_capture(path)
    try:
        info = ClipInfo(
            str(path),
            max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
            float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        cap.release()
    if info.width <= 0 or info.height <= 0:
        label = path if label is None else label
        raise VideoError(no_video_message(label) if is_url(label) else f"{_label(label)}: no video stream")
    return info


def no_video_message(url: str | Path) -> str:
    """The one message for a URL that opens but yields no frame (the command line and the app both say it)."""
    return f"{url}: no video frame could be read from this address (not a video, or a stream that has ended)"


def _label(path: str | Path) -> str:
    return str(path) if is_url(path) else Path(path).name


def sample_indices(frame_count: int, n: int) -> list[int]:
    """n frame indices spread evenly over the clip (centres of n equal segments)."""
    if frame_count <= 0 or n <= 0:
        return []
    n = min(n, frame_count)
    return sorted({int((i + 0.5) * frame_count / n) for i in range(n)})


def to_rgb(bgr: np.ndarray, downscale: bool = True) -> np.ndarray:
    import cv2

    h, w = bgr.shape[:2]
    if h * w > MAX_FRAME_PIXELS:  # a stream whose frames grew after it was opened
        raise VideoError(too_many_pixels("the video", w, h))
    if downscale and max(h, w) > MAX_DECODE_SIDE:
        scale = MAX_DECODE_SIDE / max(h, w)
        bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def sample_frames(path: str | Path, n: int = 10, progress: Callable[[str, float], None] | None = None) -> list[Frame]:
    """Decode n evenly spaced frames, seeking to each. Raises VideoError when none can be read. An HTTP(S) file
    its server cannot stream is fetched first (engine.io.fetch; ``progress`` gets ("download", fraction))."""
    from engine.io.fetch import readable

    with readable(path, progress) as source:
        info = probe(source, path)
        fps = info.fps if info.fps > 0 else 25.0
        indices = sample_indices(info.frame_count, n) if info.frame_count > 0 else []
        frames = _read_timed(source, indices, fps) if indices else []
        if frames is None:  # variable frame rate: the same times, read in order with the stream's own clock
            frames = read_by_time(source, [i / fps for i in indices], fps)
        if not frames:  # unknown frame count or seeking failed: read sequentially, bounded
            cap = open_capture(source)
            try:
                frames = _read_sequential(cap, n, fps)
            finally:
                cap.release()
    if not frames:
        raise VideoError(f"{_label(path)}: no frame could be decoded (truncated or not a video)")
    return frames


def read_frames(path: str | Path, indices: list[int], fps: float = 0.0, downscale: bool = True) -> list[Frame]:
    """The frames at ``indices``, by seeking to each (the one reader for matching, training and evaluation).
    Frames that cannot be read are left out; ``downscale=False`` keeps annotated frames at their own size."""
    return _seek(path, indices, fps, downscale, timed=False) or []


def _read_timed(path: str | Path, indices: list[int], fps: float) -> list[Frame] | None:
    """``read_frames`` by seeking, with each frame's time from the stream (its presentation time); None when a
    frame's time is not its number over the frame rate (a variable-frame-rate file, where OpenCV's frame seek lands
    elsewhere: the times must be read in order, ``read_by_time``)."""
    return _seek(path, indices, fps, True, timed=True)


def _seek(path: str | Path, indices: list[int], fps: float, downscale: bool, timed: bool) -> list[Frame] | None:
    """Seek to each index and decode; ``timed``: None as soon as a frame's presentation time is not its number
    over the frame rate (or goes back)."""
    import cv2

    cap = open_capture(path)
    fps = fps or float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
    frames: list[Frame] = []
    try:
        for idx in indices:
            cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
            ok, bgr = cap.read()
            if not ok or bgr is None:
                continue
            if timed:
                t = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
                if abs(t - idx / fps) > VFR_TOLERANCE / fps or (frames and t <= frames[-1].time_s):
                    return None
            frames.append(Frame(idx, idx / fps, to_rgb(bgr, downscale)))  # timed: = t, within half a frame
    finally:
        cap.release()
    return frames


def read_by_time(path: str | Path, times: list[float], fps: float = 25.0) -> list[Frame]:
    """The first frame at or after each of ``times`` (seconds, ascending), read in order: every frame is decoded
    (``grab``), only the kept ones converted; each keeps its true number and presentation time. The reader for
    variable-frame-rate files, where a frame's number says nothing about its time."""
    import cv2

    cap = open_capture(path)
    frames: list[Frame] = []
    todo = sorted(times)
    index = 0
    try:
        while todo and cap.grab():
            pos = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
            t = pos if pos > 0 or index == 0 else index / fps
            if t + 1e-4 >= todo[0]:
                while todo and t + 1e-4 >= todo[0]:
                    todo.pop(0)
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    frames.append(Frame(index, round(t, 3), to_rgb(bgr)))
            index += 1
    finally:
        cap.release()
    return frames


def _read_sequential(cap, n: int, fps: float, limit: int = 3000) -> list[Frame]:
    """Fallback for containers without a frame count: keep every frame up to a bound, then subsample."""
    kept: list[Frame] = []
    step = 1
    i = 0
    while i < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            kept.append(Frame(i, i / fps, to_rgb(bgr)))
            if len(kept) >= 4 * n:
                kept = kept[::2]
                step *= 2
        i += 1
    if len(kept) <= n:
        return kept
    return [kept[j] for j in sample_indices(len(kept), n)]
