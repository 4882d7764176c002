"""A product timeline of a whole video or stream: which catalogue product is shown, from when to when.

Frames are sampled every ``every_s`` seconds along the video (engine.io.sampler: seeking in files, reading and
dropping frames in streams) and matched a few at a time as the engine matches a clip's frames
(``Engine.frame_evidence``): each frame gives every candidate product's best similarity. Only that evidence is
kept (the ``keep`` best products of each frame), never the frames, so memory stays flat over hours of video.

Segments come from a Viterbi path over one state per product plus a "no product" state: a frame scores its
similarity to the state's product (the "no product" state scores ``none_below``), and every change of state
costs ``switch_penalty``. The path with the highest total is the timeline: a product holds a segment when its
evidence beats the others' by more than the cost of switching, and "no product" holds the stretches where no
product reaches ``none_below``. Each segment carries its product's mean evidence, the runner-up's, the margin and
a verdict, with the rules of a clip's verdict (engine.types.Verdict).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.errors import EngineError, VideoError
from engine.types import CONFIDENT_RELATIVE_MARGIN, Frame, FrameVote, relative_lead

NO_PRODUCT = ""  # the "no product" state's id in segments (its verdict is "none")


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
    batch: int = 4  # frames matched per engine call
    decode: str = "auto"  # "auto", "seek" or "sequential" (engine.io.sampler)


@dataclass(frozen=True)
class FrameEvidence:
    """One sampled frame's evidence: its best similarity to each of its best products, and its vote."""

    frame_index: int
    time_s: float
    similarity: dict[str, float]
    voted: str | None

    @classmethod
    def of(cls, vote: FrameVote, keep: int = 20) -> FrameEvidence:
        best = sorted(vote.product_similarity.items(), key=lambda kv: -kv[1])[: max(1, keep)]
        return cls(vote.frame_index, vote.time_s, dict(best), vote.voted_product)


@dataclass(frozen=True)
class Segment:
    """A stretch of the video given to one product (``product_id`` NO_PRODUCT: none).

    ``mean_evidence``: the product's similarity averaged over the segment's sampled frames; ``runner_up`` and
    ``margin``: the next product by the same average and how far behind it is; ``votes``: the segment's frames
    that voted for the product. ``verdict``: "confident" when the margin is at least UNCERTAIN_BELOW and the
    product also leads on votes, else "uncertain"; "none" for a stretch without a product. ``first`` and
    ``last`` index the timeline's frames."""

    start_s: float
    end_s: float
    product_id: str
    name: str
    mean_evidence: float
    runner_up: str | None
    margin: float
    votes: int
    verdict: str
    first: int
    last: int

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def is_product(self) -> bool:
        return self.product_id != NO_PRODUCT


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
                   tuple(FrameEvidence(int(f["frame_index"]), float(f["time_s"]), dict(f["similarity"]), f["voted"])
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


def format_time(seconds: float) -> str:
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


# ---------------------------------------------------------------------------------------------------- segmenting
def viterbi(scores: np.ndarray, switch_penalty: float) -> np.ndarray:
    """The state path maximising the summed ``scores[t, path[t]]`` less ``switch_penalty`` per change of state.

    ``scores``: (frames, states). O(frames x states): the best way into a state is either staying in it or
    switching from the best state of the frame before (one penalty, whichever state that is). Ties stay, and
    among states keep the lowest index."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError("scores must be (frames, states)")
    n, k = scores.shape
    if n == 0 or k == 0:
        return np.zeros(0, dtype=np.int64)
    back = np.zeros((n, k), dtype=np.int64)
    total = scores[0].copy()
    states = np.arange(k)
    for t in range(1, n):
        j = int(np.argmax(total))
        switch = total[j] - switch_penalty
        moves = switch > total
        back[t] = np.where(moves, j, states)
        total = np.where(moves, switch, total) + scores[t]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(total))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def evidence_matrix(frames: list[FrameEvidence] | tuple[FrameEvidence, ...]) -> tuple[list[str], np.ndarray]:
    """(products, frames x products similarity). A product missing from a frame's kept best ones gets that
    frame's lowest kept similarity (it was no better); a frame without any evidence gets -1 everywhere."""
    products = sorted({p for f in frames for p in f.similarity})
    col = {p: i for i, p in enumerate(products)}
    m = np.full((len(frames), len(products)), -1.0)
    for t, f in enumerate(frames):
        if f.similarity:
            m[t] = min(f.similarity.values())
            for p, v in f.similarity.items():
                m[t, col[p]] = v
    return products, m


def relative_evidence(m: np.ndarray) -> np.ndarray:
    """Each frame's similarities as its products' lead over the frame's median product, divided by the best
    product's lead: the best scores 1, the median 0 (a frame whose products all tie scores 0 everywhere)."""
    if m.size == 0:
        return m
    med = np.median(m, axis=1, keepdims=True)
    spread = m.max(axis=1, keepdims=True) - med
    return np.where(spread > 1e-9, (m - med) / np.maximum(spread, 1e-9), 0.0)


def _no_product_scores(m: np.ndarray, none_below: float) -> np.ndarray:
    """The "no product" state's score per frame: above any product's (1) where the frame's best similarity stays
    under ``none_below``, else below every product but the weakest (a product must be shown to hold a frame)."""
    best = m.max(axis=1, keepdims=True) if m.size else np.full((len(m), 1), -1.0)
    return np.where(best < none_below, 1.5, -0.5)


def segment(frames: list[FrameEvidence] | tuple[FrameEvidence, ...], end_s: float, every_s: float,
            switch_penalty: float = TimelineParams.switch_penalty, none_below: float = TimelineParams.none_below,
            names: dict[str, str] | None = None) -> tuple[Segment, ...]:
    """Segments of a sequence of sampled frames (in time order). A segment runs from half-way between its first
    frame and the frame before (0 for the first) to half-way to the frame after (``end_s`` for the last)."""
    if not frames:
        return ()
    products, m = evidence_matrix(frames)
    scores = np.concatenate([_no_product_scores(m, none_below), relative_evidence(m)], axis=1)  # state 0: none
    path = viterbi(scores, switch_penalty)
    times = [f.time_s for f in frames]
    cuts = [0] + [t for t in range(1, len(path)) if path[t] != path[t - 1]] + [len(path)]
    names = names or {}
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        start = 0.0 if a == 0 else (times[a - 1] + times[a]) / 2
        end = max(end_s, times[-1]) if b == len(path) else (times[b - 1] + times[b]) / 2
        state = int(path[a])
        out.append(_segment(frames[a:b], m[a:b], products, state - 1, start, end, a, names))
    return tuple(out)


def _segment(frames, m: np.ndarray, products: list[str], col: int, start: float, end: float, first: int,
             names: dict[str, str]) -> Segment:
    means = m.mean(axis=0) if len(products) else np.zeros(0)
    order = np.argsort(-means, kind="stable")
    if col < 0:  # no product: the best product's evidence is shown, for what it is worth
        best = int(order[0]) if len(order) else -1
        return Segment(round(start, 3), round(end, 3), NO_PRODUCT, "no product",
                       round(float(means[best]), 4) if best >= 0 else 0.0, products[best] if best >= 0 else None,
                       0.0, 0, "none", first, first + len(frames) - 1)
    pid = products[col]
    others = [int(i) for i in order if int(i) != col]
    runner = products[others[0]] if others else None
    margin = float(means[col] - means[others[0]]) if others else float(means[col])
    votes = sum(1 for f in frames if f.voted == pid)
    runner_votes = sum(1 for f in frames if runner and f.voted == runner)
    sure = (int(order[0]) == col and relative_lead(means) >= CONFIDENT_RELATIVE_MARGIN
            and votes > runner_votes)  # the clip verdict's rule, for the segment's own product
    return Segment(round(start, 3), round(end, 3), pid, names.get(pid, pid), round(float(means[col]), 4), runner,
                   round(margin, 4), votes, "confident" if sure else "uncertain", first, first + len(frames) - 1)


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
        self.reader, self.duration_s = open_sampler(source, self.every_s, params.decode)
        self.frames: list[FrameEvidence] = []
        self.status = "running"
        self.note = ""
        self.examples = engine.examples()
        self.names = {pid: str(p.get("name", pid)) for pid, p in engine.index.products.items()}
        self._t0 = time.perf_counter()
        self._seconds = 0.0

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
            frames = self.reader.next_frames(self.params.batch)
        except VideoError as e:
            return self._finish("broken", str(e))
        if frames:
            votes = self.engine.frame_evidence(frames, self.examples)
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
        """The segments over the frames matched so far."""
        complete = self.status == "complete" and self.duration_s > 0
        end = self.duration_s if complete else (self.covered_s + self.every_s / 2 if self.frames else 0.0)
        if self.duration_s > 0:
            end = min(end, self.duration_s)
        p = self.params
        segments = segment(self.frames, end, self.every_s, p.switch_penalty, p.none_below, self.names)
        return Timeline(self.label, self.every_s, round(end, 3), segments, tuple(self.frames), self.status,
                        self.note, {**asdict(p), "every_s": self.every_s}, round(self._seconds, 3))


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
