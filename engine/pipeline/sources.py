"""What ``Engine.match`` matches: a typed source. One clip (a file or URL), many clips (a list or a folder),
frames already decoded (a live stream's recent frames, a test's), or a query already detected and embedded.

``source_of("clip.mp4")``, ``source_of("https://...")`` and ``source_of("folder/")`` build the first two."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.io.video import VIDEO_SUFFIXES, is_url
from engine.pipeline.search import Query
from engine.types import Frame


@dataclass(frozen=True)
class ClipPath:
    """One clip: a file, or a URL (streamed, or downloaded when it cannot be; engine.io.video.sample_frames)."""

    path: str | Path

    @property
    def name(self) -> str:
        """The clip's name in a result: the file's name (the last part of a URL's path)."""
        return Path(self.path).name


@dataclass(frozen=True)
class ClipPaths:
    """Many clips, matched in order while the next one decodes; a clip that cannot be read yields its error."""

    paths: tuple[str | Path, ...]

    @classmethod
    def folder(cls, folder: str | Path) -> ClipPaths:
        """The video files of a folder (engine.io.video.VIDEO_SUFFIXES), sorted; an EngineError when there are none."""
        folder = Path(folder)
        if not folder.is_dir():
            raise EngineError(f"{folder}: not a folder of clips")
        clips = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES))
        if not clips:
            raise EngineError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
        return cls(clips)


@dataclass(frozen=True)
class DecodedFrames:
    """Frames already decoded (``clip_name``: the name their result carries)."""

    frames: tuple[Frame, ...]
    clip_name: str = ""


@dataclass(frozen=True)
class PreparedQuery:
    """Frames already detected and embedded (engine.pipeline.engine.query_frames): only searched and voted, so one
    query can be searched with several sets of livestream examples (engine.eval.corrections)."""

    query: Query
    clip_name: str = ""


Source = ClipPath | ClipPaths | DecodedFrames | PreparedQuery


def source_of(target: str | Path) -> ClipPath | ClipPaths:
    """A URL or a clip file: ClipPath; a folder: its clips (ClipPaths.folder). A URL stays text (Path folds its
    '//')."""
    if is_url(target):
        return ClipPath(str(target))
    return ClipPaths.folder(target) if Path(target).is_dir() else ClipPath(Path(target))
