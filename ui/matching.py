"""Matching one clip for the app: a clip source (upload or catalogue sample), the match, and the drawn frames.

``analyse`` is plain Python (no Streamlit): it matches a clip and draws its sampled frames. ``analyse_cached``
memoises it with ``st.cache_data``, keyed by the clip's SHA-256 and everything the match depends on; the clip is
only written to disk (a private temporary folder, removed right after) when the result is not cached yet.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, MutableMapping

import streamlit as st

from engine.pipeline.engine import Engine
from engine.pipeline.sources import ClipPath
from engine.render import annotate_frame, encode_jpeg
from engine.types import Frame, MatchResult
from engine.io.files import file_digest
from engine.io.video import VIDEO_SUFFIXES

Progress = Callable[[str, float], None]
UPLOAD_TYPES = ("mp4", "mov", "avi", "mkv", "webm")
FRAME_LONG_SIDE = 800  # annotated frames are drawn at this size (labels stay sharp when shown small)


@dataclass(frozen=True)
class ClipSource:
    """A clip to match: either a file that already exists (a catalogue sample) or uploaded bytes."""

    name: str
    sha256: str
    path: str | None = None
    data: bytes | None = None

    @classmethod
    def from_upload(cls, name: str, data: bytes) -> ClipSource:
        return cls(name=name, sha256=hashlib.sha256(data).hexdigest(), data=data)

    @classmethod
    def from_file(cls, path: str | Path, sha256: str | None = None) -> ClipSource:
        p = Path(path)
        return cls(name=p.name, sha256=sha256 or file_digest(p), path=str(p))

    @contextlib.contextmanager
    def materialise(self) -> Iterator[Path]:
        """The clip as a file; uploads go to a private temporary folder that is removed afterwards."""
        if self.path is not None:
            yield Path(self.path)
            return
        folder = Path(tempfile.mkdtemp(prefix="livematch-upload-"))  # mode 0700
        try:
            target = folder / safe_filename(self.name)
            target.write_bytes(self.data or b"")
            yield target
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def safe_filename(name: str) -> str:
    """A plain file name from an uploaded one: no folders; letters, digits, '.', '-', '_'; a video suffix kept."""
    base = Path(str(name).replace("\\", "/")).name
    suffix = Path(base).suffix.lower()
    suffix = suffix if suffix in VIDEO_SUFFIXES else ".mp4"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(base).stem).strip("._")[:80]
    return f"{stem or 'clip'}{suffix}"


def upload_source(name: str, data: bytes, memo: MutableMapping[str, Any], key: str) -> ClipSource:
    """Uploaded bytes as a clip source, identified by the SHA-256 of exactly these bytes.

    The digest is remembered in ``memo[key]`` (the session state) with the very bytes object it was computed from,
    and reused only for that same object: bytes are immutable, so a rerun over the same upload is not hashed again,
    while any other bytes (another file, a re-upload, new bytes under a file id seen before) are. The uploader's
    file id is not trusted for this: the upload store keeps one record per id and a new upload to it replaces it.
    """
    known = memo.get(key)
    if not (isinstance(known, tuple) and len(known) == 2 and known[0] is data):
        known = (data, hashlib.sha256(data).hexdigest())
        memo[key] = known
    return ClipSource(name=name, sha256=known[1], data=data)


@st.cache_data(show_spinner=False, max_entries=256)
def cached_file_sha256(path: str, size: int, mtime: float) -> str:
    return file_digest(path)


@dataclass(frozen=True)
class Analysis:
    """A match result, and its sampled frames drawn with their boxes (JPEG bytes, aligned with result.frames)."""

    clip_name: str
    result: MatchResult
    frames: tuple[bytes | None, ...]

    def to_json(self) -> str:
        data = self.result.to_dict()
        data["clip"] = self.clip_name
        return json.dumps(data, ensure_ascii=False, indent=1)


def analyse(engine: Engine, source: ClipSource, progress: Progress | None = None) -> Analysis:
    """Match a clip and draw its sampled frames (the same frames the engine sampled)."""
    progress = progress or (lambda stage, fraction: None)
    frames: list[Frame] = []
    with source.materialise() as path:
        result = engine.match(ClipPath(path), progress, on_frames=frames.extend)
    decoded = {f.index: f for f in frames}
    drawn: list[bytes | None] = []
    for vote in result.frames:
        frame = decoded.get(vote.frame_index)
        if frame is None:
            drawn.append(None)
            continue
        drawn.append(encode_jpeg(annotate_frame(frame.image, vote, FRAME_LONG_SIDE)))
    return Analysis(source.name, result, tuple(drawn))


@st.cache_data(show_spinner=False, max_entries=32)
def analyse_cached(sha256: str, key: str, _engine: Engine, _source: ClipSource, _progress: Progress) -> Analysis:
    """``analyse``, memoised by the clip's content and the engine key (settings, catalogue, index build)."""
    return analyse(_engine, _source, _progress)
