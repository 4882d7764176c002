"""Matching a live stream as it plays: frames sampled every few seconds (engine.io.stream), each step matched
at once, and the ranking re-computed over the most recent frames, since a presenter moves on from one product
to the next. The command line (``match URL --live``) and the Match page's stream field both drive it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from engine.io.fetch import Progress
from engine.io.stream import StreamReader
from engine.io.urlpolicy import StreamPolicy
from engine.pipeline.engine import Engine
from engine.pipeline.sources import DecodedFrames
from engine.pipeline.votes import rank
from engine.types import Frame, FrameVote, MatchResult

RECENT_FRAMES = 10  # the ranking pools the last 10 sampled frames (20 s of stream at one frame every 2 s)


@dataclass(frozen=True)
class LiveUpdate:
    """One step of a live match: the ranking over the recent frames, the votes this step added (and their decoded
    frames, for drawing), how many frames have been matched so far, and whether the stream has ended."""

    result: MatchResult
    added: tuple[FrameVote, ...]
    decoded: tuple[Frame, ...]
    frames_seen: int
    ended: bool


class LiveMatch:
    """A stream being matched: call ``step()`` again and again (each reads and matches ``per_step`` frames)."""

    def __init__(self, engine: Engine, url: str, every_s: float | None = None, per_step: int = 1,
                 recent: int = RECENT_FRAMES, progress: Progress | None = None,
                 download_limit_mb: float | None = None, policy: StreamPolicy | None = None) -> None:
        """``progress``: ("download", fraction) while a file its server cannot stream is fetched (engine.io.fetch,
        at most ``download_limit_mb``; default engine.io.fetch.download_limit_mb()). ``policy``: the app's stream
        policy (engine.io.urlpolicy), checked at every hop when guarded."""
        self.engine = engine
        self.reader = StreamReader(url, engine.settings.detection.stream_every if every_s is None else every_s,
                                   progress, download_limit_mb, policy)
        self.per_step = max(1, int(per_step))
        self.recent: deque[FrameVote] = deque(maxlen=max(1, int(recent)))
        self.frames_seen = 0
        self.last: MatchResult | None = None

    @property
    def ended(self) -> bool:
        return self.reader.ended

    def step(self) -> LiveUpdate:
        """Read and match the next frames; the ranking is over the ``recent`` latest sampled frames."""
        frames = [] if self.reader.ended else self.reader.next_frames(self.per_step)
        added: tuple[FrameVote, ...] = ()
        if frames:
            matched = self.engine.match(DecodedFrames(tuple(frames), self.reader.label))
            added = matched.frames
            self.recent.extend(added)
            self.frames_seen += len(added)
            ranking = rank(list(self.recent), self.engine.index.products, self.engine.settings.search.rank_by)
            self.last = MatchResult(self.reader.label, tuple(self.recent), tuple(ranking), matched.timings,
                                    self.engine.settings.flat())
        result = self.last or MatchResult(self.reader.label, (), (), {}, self.engine.settings.flat())
        return LiveUpdate(result, added, tuple(frames), self.frames_seen, self.reader.ended)

    def close(self) -> None:
        self.reader.close()
