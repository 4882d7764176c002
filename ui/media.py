"""Images for display, cached as JPEG bytes: catalogue thumbnails, annotated catalogue images, clip-frame crops."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import streamlit as st

from engine.errors import EngineError
from engine.geometry import Box
from engine.io.images import read_rgb
from engine.render import annotate_regions, encode_jpeg, padded_crop, thumbnail
from engine.types import RegionRef
from engine.io.video import sample_frames

from .matching import ClipSource

THUMB = (320, 320)


def _mtime(path: str | Path | None) -> float | None:
    try:
        return Path(path).stat().st_mtime if path else None
    except OSError:
        return None


def _box(box: Sequence[float] | None) -> Box | None:
    return tuple(round(float(v), 1) for v in box) if box is not None else None  # type: ignore[return-value]


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumb(path: str, mtime: float, box: Box | None, size: tuple[int, int]) -> bytes | None:
    try:
        image = read_rgb(path)
    except EngineError:
        return None
    return encode_jpeg(thumbnail(padded_crop(image, box), size))


def thumb(path: str | None, box: Sequence[float] | None = None, size: tuple[int, int] = THUMB) -> bytes | None:
    """A catalogue image (or the box of it) centred on a plain square; None when it cannot be read."""
    mtime = _mtime(path)
    if path is None or mtime is None:
        return None
    return _thumb(str(path), mtime, _box(box), size)


@st.cache_data(show_spinner=False, max_entries=512)
def _annotated(path: str, mtime: float, regions: tuple[tuple[Box, str, int], ...], long_side: int) -> bytes | None:
    try:
        image = read_rgb(path)
    except EngineError:
        return None
    refs = [RegionRef("", path, box, cat, inst) for box, cat, inst in regions]
    return encode_jpeg(thumbnail(annotate_regions(image, refs, long_side), (long_side, long_side)))


def annotated_image(path: str, regions: Sequence[RegionRef], long_side: int = 640) -> bytes | None:
    """A catalogue image with its annotated regions drawn, on a square tile; None when it cannot be read."""
    mtime = _mtime(path)
    if mtime is None:
        return None
    key = tuple((_box(r.box), r.category, r.instance_id) for r in regions if r.image_path == path)
    return _annotated(path, mtime, key, long_side)  # type: ignore[arg-type]


def _crops(path: str, n_frames: int, requests: tuple[tuple[int, Box | None], ...],
           size: tuple[int, int]) -> tuple[bytes | None, ...]:
    try:
        frames = {f.index: f.image for f in sample_frames(path, n_frames)}
    except EngineError:
        return tuple(None for _ in requests)
    out = []
    for index, box in requests:
        image = frames.get(index)
        out.append(encode_jpeg(thumbnail(padded_crop(image, box), size)) if image is not None else None)
    return tuple(out)


@st.cache_data(show_spinner=False, max_entries=16)
def _clip_crops(path: str, mtime: float, n_frames: int, requests: tuple[tuple[int, Box | None], ...],
                size: tuple[int, int]) -> tuple[bytes | None, ...]:
    return _crops(path, n_frames, requests, size)


def _key(requests: Sequence[tuple[int, Sequence[float] | None]]) -> tuple[tuple[int, Box | None], ...]:
    return tuple((int(i), _box(b)) for i, b in requests)


def clip_crops(path: str | None, n_frames: int, requests: Sequence[tuple[int, Sequence[float] | None]],
               size: tuple[int, int] = THUMB) -> list[bytes | None]:
    """Crops of sampled frames of a clip (decoded once, the way the engine sampled them); None where unavailable."""
    mtime = _mtime(path)
    if path is None or mtime is None:
        return [None for _ in requests]
    return list(_clip_crops(str(path), mtime, int(n_frames), _key(requests), size))


@st.cache_data(show_spinner=False, max_entries=16)
def _source_crops(sha256: str, n_frames: int, requests: tuple[tuple[int, Box | None], ...], size: tuple[int, int],
                  _source: ClipSource) -> tuple[bytes | None, ...]:
    try:
        with _source.materialise() as path:
            return _crops(str(path), n_frames, requests, size)
    except OSError:
        return tuple(None for _ in requests)


def source_crops(source: ClipSource, n_frames: int, requests: Sequence[tuple[int, Sequence[float] | None]],
                 size: tuple[int, int] = THUMB) -> list[bytes | None]:
    """``clip_crops`` of a clip being matched: a catalogue sample in place, an upload by its content (written to a
    private temporary file only when its crops are not cached yet)."""
    if source.path is not None:
        return clip_crops(source.path, n_frames, requests, size)
    return list(_source_crops(source.sha256, int(n_frames), _key(requests), size, source))
