"""A product timeline of a whole video or stream: which catalogue product is shown, from when to when.

Frames are matched as the engine matches a clip's frames (``Engine.frame_evidence``): each frame gives every
candidate product's best similarity. Only that evidence is kept (the ``keep`` best products of each frame), never
the frames, so memory stays flat over hours of video. Which frames: by default coarse to fine
(engine.pipeline.coarse: one frame every ``coarse_s``, more only where the answer changes, boundaries to
``fine_s``); with ``coarse_s`` 0, every ``every_s`` seconds (engine.io.sampler: seeking in files, reading and
dropping frames in streams), as before.

Segments come from a Viterbi path over one state per product plus a "no product" state (engine.pipeline.segments):
a frame scores its similarity to the state's product (the "no product" state scores ``none_below``), and every
change of state costs ``switch_penalty``. The path with the highest total is the timeline: a product holds a
segment when its evidence beats the others' by more than the cost of switching, and "no product" holds the
stretches where no product reaches ``none_below``. Each segment carries its product's mean evidence, the
runner-up's, the margin and a verdict, with the rules of a clip's verdict (engine.types.Verdict).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from engine.errors import EngineError, VideoError
from engine.pipeline.coarse import CoarseToFine, release_region_shapes
from engine.pipeline.segments import (NO_PRODUCT, FrameEvidence, Segment, evidence_matrix, format_time,
                                      frame_weights, relative_evidence, segment, segment_verdict, viterbi)
from engine.types import Frame, FrameVote

# A live run's coarse interval at most (timeline --live): a change is seen by the next coarse sample, and a segment is
# printed once the frames around the change are matched (docs/timeline.md: within 10 s on 2 cores).
LIVE_COARSE_S = 6.0
FIX_AFTER_S = 300.0  # while a run goes on, segments closed this long (video time) before its last frame stay as found

__all__ = ["LIVE_COARSE_S", "NO_PRODUCT", "FrameEvidence", "Segment", "Timeline", "TimelineParams", "TimelineRun",
           "build_timeline",
           "evidence_matrix", "format_time", "frame_weights", "relative_evidence", "segment", "segment_verdict",
           "viterbi"]


@dataclass(frozen=True)
class TimelineParams:
    """How a timeline is sampled and segmented. ``every_s`` None: the engine's ``stream_every`` (2 s).

    Each frame's evidence is made relative before segmenting: a product scores its similarity's lead over the
    frame's median product as a share of the best product's lead (the best scores 1, the median 0), so the
    penalty reads the same for any embedder and pooling (the raw cosines of an ensemble with mean pooling sit
    within a few hundredths of each other). ``switch_penalty`` is in those units: a switch needs the new product to
    gain more than the penalty summed over its frames, so with 1.0 a product must lead for about two sampled frames
    to open a segment between two others. ``none_below`` is in cosine similarity: a frame whose best product stays
    under it scores for "no product" (0.72 for the default ensemble with mean pooling: frames without any product,
    plain grey ones, reach 0.63-0.67 against the demo catalogue; frames of the demo and development clips 0.78 and
    more). See docs/timeline.md."""

    every_s: float | None = None
    switch_penalty: float = 1.0
    none_below: float = 0.72
    keep: int = 20  # products kept per frame (the best ones): memory per frame stays bounded for any catalogue
    batch: int = 4  # frames matched per engine call; coarse to fine: coarse windows read per step
    decode: str = "auto"  # "auto", "seek" or "sequential" (engine.io.sampler; evenly spaced frames only)
    coarse_s: float = 8.0  # coarse to fine: seconds between coarse samples (0, or a video shorter than two coarse
    # windows: a frame every every_s, as before)
    fine_s: float = 1.0  # coarse to fine: how closely a boundary is looked for (at most every_s; a coarser one lost
    # a dev join: docs/timeline.md)
    region_height: int = 0  # coarse to fine: the height every person region is embedded at (0: by its aspect, as a
    # clip's match; a fixed one holds one compiled shape per backbone, but moved dev clips' evidence: docs/timeline.md)
    region_rows: int = 1  # coarse to fine: the rows a batch of regions runs in (compiled shapes of half the memory)
    locate_cuts: bool = True  # coarse to fine: a change between two sure frames with one cut between them is looked
    # for at the cut only (the two frames either side of it), not at every grid frame between (docs/timeline.md)
    coarse_skip: bool = False  # coarse to fine: the first coarse sample of a read left out where the frame before and
    # the sample after it are sure of the same product with no cut between (docs/timeline.md)
    release_shapes: bool = False  # coarse to fine: let go of the compiled region shapes the run does not use when it
    # starts; for a process of its own (the command line), not a server whose other visitors match clips with them

    @property
    def coarse(self) -> bool:
        """Whether frames are sampled coarse to fine (else evenly, every ``every_s``)."""
        return self.coarse_s > 0 and (self.every_s is None or self.coarse_s > min(self.fine_s, self.every_s))


STATUSES = ("running", "complete", "stopped", "broken")


@dataclass(frozen=True)
class Timeline:
    """A video's product timeline. ``status``: "complete" (read to its end), "stopped" (by the person),
    "broken" (the source failed mid-way: ``note`` says where; the segments found so far stand) or "running"."""

    source: str
    every_s: float
    end_s: float  # the end of the covered part (the video's duration once complete)
    segments: tuple[Segment, ...]
    frames: tuple[FrameEvidence, ...] = field(repr=False)
    status: str = "complete"
    note: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # wall-clock time spent

    @property
    def product_segments(self) -> tuple[Segment, ...]:
        """The segments that show a product."""
        return tuple(s for s in self.segments if s.is_product)

    @property
    def message(self) -> str:
        """One line on the outcome: how many product segments, or that no catalogue product was found."""
        where = f"{len(self.frames)} frames over {format_time(self.end_s)}"
        if not self.frames:
            text = "no frame was sampled"
        elif not self.product_segments:
            text = f"no catalogue product was found ({where})"
        else:
            n = len({s.product_id for s in self.product_segments})
            text = f"{len(self.product_segments)} product segment(s), {n} product(s) ({where})"
        if self.status == "broken":
            text += f"; the source broke off: {self.note}" if self.note else "; the source broke off"
        elif self.status == "stopped":
            text += "; stopped before the end"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timeline:
        return cls(d["source"], float(d["every_s"]), float(d["end_s"]),
                   tuple(Segment(**s) for s in d["segments"]),
                   tuple(FrameEvidence(int(f["frame_index"]), float(f["time_s"]), dict(f["similarity"]), f["voted"],
                                       tuple(dict(m) for m in f.get("member_similarity", ())))
                         for f in d["frames"]),
                   d.get("status", "complete"), d.get("note", ""), dict(d.get("params", {})),
                   float(d.get("seconds", 0.0)))

    def to_csv(self) -> str:
        """The segments as CSV (start and end in seconds and as h:mm:ss)."""
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["start_s", "end_s", "start", "end", "product_id", "name", "mean_evidence", "runner_up",
                    "margin", "votes", "frames", "verdict"])
        for s in self.segments:
            w.writerow([f"{s.start_s:.2f}", f"{s.end_s:.2f}", format_time(s.start_s), format_time(s.end_s),
                        s.product_id, s.name, f"{s.mean_evidence:.4f}", s.runner_up or "", f"{s.margin:.4f}",
                        s.votes, s.frames, s.verdict])
        return out.getvalue()


# ---------------------------------------------------------------------------------------------------- running
Progress = Callable[[str, float], None]


class TimelineRun:
    """A timeline being built: ``step()`` reads and matches the next few sampled frames; ``timeline()`` gives the
    segments so far. A failure of the source after the first frames ends the run as "broken", keeping them."""

    def __init__(self, engine, source: str | Path, params: TimelineParams = TimelineParams()) -> None:
        from engine.io.sampler import open_sampler

        self.engine = engine
        if engine.index is None:
            raise EngineError("no index loaded: build or load one first")
        self.params = params
        self.every_s = float(engine.settings.detection.stream_every if params.every_s is None else params.every_s)
        self.coarse = params.coarse and params.coarse_s > min(params.fine_s, self.every_s)
        self.examples = engine.examples()
        self.sampler: CoarseToFine | None = None
        if self.coarse:  # the fine grid read sequentially; only some of its frames are matched
            fine = min(params.fine_s, self.every_s)
            self.reader, self.duration_s = open_sampler(source, fine, "sequential")
            if 0 < self.duration_s < 2 * params.coarse_s:  # a short clip: coarse to fine would save nothing
                self.reader.close()
                self.coarse = False
            else:
                if params.release_shapes:
                    release_region_shapes(engine.embedder, params.region_height, params.region_rows)
                self.sampler = CoarseToFine(engine, self.reader, params.coarse_s, fine, params.batch, params.keep,
                                            params.none_below, self.examples, dense_s=self.every_s,
                                            region_height=params.region_height, region_rows=params.region_rows,
                                            locate=params.locate_cuts, skip=params.coarse_skip)
        if not self.coarse:
            self.reader, self.duration_s = open_sampler(source, self.every_s, params.decode)
        self.frames: list[FrameEvidence] = []
        self.status = "running"
        self.note = ""
        self.names = {pid: str(p.get("name", pid)) for pid, p in engine.index.products.items()}
        self._t0 = time.perf_counter()
        self._seconds = 0.0
        self._fixed: tuple[Segment, ...] = ()  # while running: segments kept as found (timeline())
        self._fixed_frames = 0  # the frames they hold

    @property
    def label(self) -> str:
        return self.reader.label

    @property
    def ended(self) -> bool:
        return self.status != "running"

    @property
    def covered_s(self) -> float:
        """Seconds of video sampled so far."""
        return self.frames[-1].time_s if self.frames else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds of work left, estimated from the pace so far (None while unknown: no duration, or nothing yet)."""
        if self.ended:
            return 0.0
        if self.duration_s <= 0 or self.covered_s <= 0:
            return None
        spent = time.perf_counter() - self._t0
        return max(0.0, spent / self.covered_s * (self.duration_s - self.covered_s))

    @property
    def fraction(self) -> float:
        """How far through the video (0 while its duration is unknown)."""
        if self.status == "complete":
            return 1.0
        return min(1.0, self.covered_s / self.duration_s) if self.duration_s > 0 else 0.0

    def step(self, on_frames: Callable[[list[Frame], list[FrameVote]], None] | None = None) -> int:
        """Read and match the next ``params.batch`` frames; returns how many were added (0 once it has ended).
        ``on_frames`` sees the decoded frames and their votes before they are let go (the app keeps thumbnails)."""
        if self.ended:
            return 0
        try:
            if self.sampler is not None:
                frames, votes = self.sampler.next()
            else:
                frames = self.reader.next_frames(self.params.batch)
                votes = self.engine.frame_evidence(frames, self.examples) if frames else []
        except VideoError as e:
            return self._finish("broken", str(e))
        if frames:
            self.frames.extend(FrameEvidence.of(v, self.params.keep) for v in votes)
            if on_frames is not None:
                on_frames(frames, votes)
        if self.reader.ended:  # short of the container's duration by more than two samples: broken off
            if self.duration_s > 0 and self.covered_s + 2 * self.every_s < self.duration_s:
                note = getattr(self.reader, "broken", "") or (
                    f"{self.label}: the video ended at {self.covered_s:.1f} s of its {self.duration_s:.1f} s")
                return self._finish("broken", note, len(frames))
            return self._finish("complete", "", len(frames))
        self._seconds = time.perf_counter() - self._t0
        return len(frames)

    def _finish(self, status: str, note: str, added: int = 0) -> int:
        self.status, self.note = status, note
        self._seconds = time.perf_counter() - self._t0
        self.reader.close()
        if status == "broken" and not self.frames:
            raise VideoError(note or f"{self.label}: no frame could be read")
        return added

    def stop(self) -> None:
        """Stop reading (the person's Stop); the segments so far stand."""
        if not self.ended:
            self._finish("stopped", "")

    def close(self) -> None:
        self.reader.close()

    def timeline(self) -> Timeline:
        """The segments over the frames matched so far. Once ended: the Viterbi path over every frame. While it runs
        (a live stream, the app's refreshes): segments that closed more than FIX_AFTER_S of video before the last
        frame are kept as found and only the frames since are segmented again, so each call costs the same however
        long the stream has run."""
        complete = self.status == "complete" and self.duration_s > 0
        end = self.duration_s if complete else (self.covered_s + self.every_s / 2 if self.frames else 0.0)
        if self.duration_s > 0:
            end = min(end, self.duration_s)
        p = self.params
        if self.ended:
            segments = segment(self.frames, end, self.every_s, p.switch_penalty, p.none_below, self.names,
                               weighted=self.coarse)
        else:
            segments = self._running_segments(end)
        return Timeline(self.label, self.every_s, round(end, 3), segments, tuple(self.frames), self.status,
                        self.note, {**asdict(p), "every_s": self.every_s, "coarse": self.coarse},
                        round(self._seconds, 3))

    def _running_segments(self, end: float) -> tuple[Segment, ...]:
        p, off = self.params, self._fixed_frames
        fresh = segment(self.frames[off:], end, self.every_s, p.switch_penalty, p.none_below, self.names,
                        weighted=self.coarse)
        start = self._fixed[-1].end_s if self._fixed else 0.0
        fresh = tuple(replace(s, first=s.first + off, last=s.last + off, start_s=start if i == 0 else s.start_s)
                      for i, s in enumerate(fresh))
        out = self._fixed + fresh
        settled = [s for s in fresh[:-1] if s.end_s <= self.covered_s - FIX_AFTER_S]
        if settled:
            self._fixed += tuple(settled)
            self._fixed_frames = settled[-1].last + 1
        return out


def build_timeline(engine, source: str | Path, params: TimelineParams = TimelineParams(),
                   progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> Timeline:
    """The whole video's timeline (or, for a stream, until it ends or ``should_stop()``)."""
    run = TimelineRun(engine, source, params)
    try:
        while not run.ended:
            if should_stop is not None and should_stop():
                run.stop()
                break
            run.step()
            if progress is not None:
                progress("timeline", run.fraction)
    finally:
        run.close()
    return run.timeline()
