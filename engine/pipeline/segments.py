"""Segments of a timeline: which product holds each stretch of the sampled frames (a Viterbi path over one state
per product plus "no product", each change of state costing ``switch_penalty``), and the records they are made of.

The frames need not be evenly spaced (coarse-to-fine sampling, engine.pipeline.coarse, keeps few frames where
nothing changes and many around a change): ``segment`` then weighs each frame's evidence by the stretch of video it
stands for, in units of the nominal interval, so a frame standing for 8 s counts as four frames 2 s apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.types import FrameVote, relative_lead
from engine.verdict import DEFAULT_RULE, VerdictRule, VerdictSignals, frames_agreeing, member_tops, outcome_of

NO_PRODUCT = ""  # the "no product" state's id in segments (its verdict is "none")
SWITCH_PENALTY = 1.0  # the defaults of engine.pipeline.timeline.TimelineParams (see its docstring)
NONE_BELOW = 0.72


@dataclass(frozen=True)
class FrameEvidence:
    """One sampled frame's evidence: its best similarity to each of its best products, and its vote."""

    frame_index: int
    time_s: float
    similarity: dict[str, float]
    voted: str | None
    member_similarity: tuple[dict[str, float], ...] = ()  # each ensemble member's own (FrameVote's), for the verdict

    @classmethod
    def of(cls, vote: FrameVote, keep: int = 20) -> FrameEvidence:
        best = sorted(vote.product_similarity.items(), key=lambda kv: -kv[1])[: max(1, keep)]
        members = tuple(dict(sorted(m.items(), key=lambda kv: -kv[1])[: max(1, keep)])
                        for m in vote.member_similarity)
        return cls(vote.frame_index, vote.time_s, dict(best), vote.voted_product, members)

    @property
    def voted_product(self) -> str | None:
        """The vote under FrameVote's name (engine.verdict reads either record)."""
        return self.voted


@dataclass(frozen=True)
class Segment:
    """A stretch of the video given to one product (``product_id`` NO_PRODUCT: none).

    ``mean_evidence``: the product's similarity averaged over the segment's sampled frames; ``runner_up`` and
    ``margin``: the next product by the same average and how far behind it is; ``votes``: the segment's frames
    that voted for the product. ``verdict``: the clip verdict's three outcomes over the segment's frames
    ("confident", "uncertain", "not in catalogue": engine.verdict); "none" for a stretch without a product. ``first`` and
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


def frame_weights(times: Sequence[float], every_s: float) -> np.ndarray:
    """How much video each frame stands for, in units of ``every_s``: half the gap to the frame before plus half
    the gap to the frame after (the first and last frames: their one gap). Evenly spaced frames ``every_s``
    apart weigh 1 each."""
    t = np.asarray(times, dtype=np.float64)
    if len(t) < 2 or every_s <= 0:
        return np.ones(len(t))
    gaps = np.diff(t)
    span = np.empty(len(t))
    span[1:-1] = (gaps[:-1] + gaps[1:]) / 2
    span[0], span[-1] = gaps[0], gaps[-1]
    return np.maximum(span, 1e-3) / every_s


def segment(frames: list[FrameEvidence] | tuple[FrameEvidence, ...], end_s: float, every_s: float,
            switch_penalty: float = SWITCH_PENALTY, none_below: float = NONE_BELOW,
            names: dict[str, str] | None = None, weighted: bool = False) -> tuple[Segment, ...]:
    """Segments of a sequence of sampled frames (in time order). A segment runs from half-way between its first
    frame and the frame before (0 for the first) to half-way to the frame after (``end_s`` for the last).
    ``weighted``: each frame's scores (and its share of a segment's mean evidence) count by the video it stands
    for (``frame_weights``): for unevenly spaced frames (coarse to fine)."""
    if not frames:
        return ()
    products, m = evidence_matrix(frames)
    scores = np.concatenate([_no_product_scores(m, none_below), relative_evidence(m)], axis=1)  # state 0: none
    times = [f.time_s for f in frames]
    w = frame_weights(times, every_s) if weighted else np.ones(len(frames))
    path = viterbi(scores * w[:, None], switch_penalty)
    cuts = [0] + [t for t in range(1, len(path)) if path[t] != path[t - 1]] + [len(path)]
    names = names or {}
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        start = 0.0 if a == 0 else (times[a - 1] + times[a]) / 2
        end = max(end_s, times[-1]) if b == len(path) else (times[b - 1] + times[b]) / 2
        state = int(path[a])
        out.append(_segment(frames[a:b], m[a:b], w[a:b], products, state - 1, start, end, a, names))
    return tuple(out)


def _segment(frames, m: np.ndarray, w: np.ndarray, products: list[str], col: int, start: float, end: float,
             first: int, names: dict[str, str]) -> Segment:
    means = np.average(m, axis=0, weights=w) if len(products) else np.zeros(0)
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
    verdict = segment_verdict(means, col, votes, runner_votes, frames, pid)
    return Segment(round(start, 3), round(end, 3), pid, names.get(pid, pid), round(float(means[col]), 4), runner,
                   round(margin, 4), votes, verdict, first, first + len(frames) - 1)


def segment_verdict(means: np.ndarray, col: int, votes: int, runner_votes: int,
                    frames: Sequence[FrameEvidence] = (), product_id: str | None = None,
                    rule: VerdictRule = DEFAULT_RULE) -> str:
    """A product segment's verdict by the clip verdict's rule (engine.verdict.outcome_of) over the segment's frames:
    its products' mean evidence (``col``: the segment's product ``product_id``), its votes and the runner-up's, and
    the ensemble members' own evidence where the frames carry it. "confident", "uncertain" or "not in catalogue":
    the one place a segment's verdict is decided."""
    order = np.argsort(-means, kind="stable")
    if int(order[0]) != col or votes <= runner_votes:  # the path chose it, but it does not lead here
        return "uncertain"
    n = max(1, len(frames))
    tops = member_tops(frames) if product_id is not None else []
    signals = VerdictSignals(
        relative_margin=relative_lead(means), vote_share=round(votes / n, 4),
        vote_lead=round((votes - runner_votes) / n, 4), members=len(tops) or 1,
        members_agree=sum(t == product_id for t in tops) if tops else 1,
        frames_agree=(round(frames_agreeing(frames, product_id) / n, 4)
                      if frames and product_id is not None else round(votes / n, 4)),
        top_similarity=float(means[col]))
    return outcome_of(signals, rule).value
