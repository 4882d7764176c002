"""The verdict of a ranking: *confident*, *uncertain, most likely X*, or *not in the catalogue*.

Every answer the ranking gives is a catalogue product, so a verdict must also say when none of them is the one shown.
On held-back clips with their product present and absent, the relative margin (the top's lead over the runner-up as a
share of its lead over the typical other product) did not tell the two apart; the frame-vote lead and how many
ensemble members put the same product first did. The rule (``VerdictRule``, calibrated leave-one-clip-out by
``engine.eval.nested.calibrate_rule`` over the clips with their product present and removed):

- **confident**: every ensemble member ranks the top product first (each member's own evidence summed over the
  frames), in at least ``frames_agree`` of the sampled frames every member's best product is that product, and the
  relative margin is at least ``relative_margin`` (the former rule's threshold, kept as a floor);
- **not in the catalogue**: no product is consistently nearest: fewer than half the members rank the top product
  first, or in no sampled frame do all members put it first and it has no clear lead (relative margin under
  ``relative_margin``) (no fitted threshold);
- **uncertain, most likely X**: otherwise.

``verdict_from_evidence(ranking, frames)`` gives the verdict of any ranking with its frames (a clip, or a timeline's
segment); ``verdict_of(ranking, threshold)`` is the former rule (relative margin and a vote lead only), kept for the
comparison and the risk-coverage curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Iterable, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:  # annotations only: engine.types imports this module
    from engine.types import FrameVote, ProductScore


class MemberEvidence(Protocol):
    """What the verdict reads of a frame: a clip's FrameVote, or a timeline's FrameEvidence."""

    @property
    def voted_product(self) -> str | None: ...

    @property
    def member_similarity(self) -> tuple[dict[str, float], ...]: ...


class Outcome(str, Enum):
    """A verdict's outcome (its value is what reports and tables print)."""

    CONFIDENT = "confident"
    UNCERTAIN = "uncertain"
    ABSENT = "not in catalogue"  # the nearest products are listed as "closest, not a match"
    NONE = "none"  # nothing matched at all

    def __str__(self) -> str:
        return self.value


# The former rule's threshold: "confident" when the top leads on votes and by at least this relative margin. Chosen
# on watchlive-dev by the previous release's leave-one-clip-out calibration; kept as one condition of the rule below.
CONFIDENT_RELATIVE_MARGIN = 0.169
UNCERTAIN_BELOW = CONFIDENT_RELATIVE_MARGIN  # the former name


@dataclass(frozen=True)
class VerdictRule:
    """The thresholds of the verdict (see the module's docstring). The defaults come from
    ``python -m engine evaluate --dataset DEV --open-set`` (docs/accuracy.md, "A verdict a person can trust")."""

    frames_agree: float = 0.35  # share of the sampled frames in which every member's best product is the top
    relative_margin: float = CONFIDENT_RELATIVE_MARGIN


DEFAULT_RULE = VerdictRule()


@dataclass(frozen=True)
class VerdictSignals:
    """What the verdict is decided on."""

    relative_margin: float = 0.0  # the evidence's relative lead (see relative_lead)
    vote_share: float = 0.0  # the top product's share of the sampled frames' votes
    vote_lead: float = 0.0  # its votes minus the runner-up's, as a share of the sampled frames
    members: int = 1  # ensemble members whose own ranking was kept
    members_agree: int = 1  # how many of them rank the top product first
    frames_agree: float = 0.0  # share of the frames in which every member's best product is the top product
    top_similarity: float = 0.0  # the top product's evidence (mean best similarity per frame)

    @property
    def unanimous(self) -> bool:
        return self.members_agree >= self.members

    @property
    def minority(self) -> bool:
        """Fewer than half the members rank the top product first."""
        return 2 * self.members_agree < self.members


@dataclass(frozen=True)
class Verdict:
    """How sure a clip's answer is, and why. ``closest``: the nearest products, best first (for *not in the
    catalogue*: "closest, not a match")."""

    outcome: Outcome
    top: str | None
    runner_up: str | None
    evidence_margin: float  # top minus runner-up, in mean best similarity per frame
    vote_margin: int  # top's votes minus the runner-up's
    relative_margin: float = 0.0  # evidence_margin / (top minus the median below the runner-up), 0..1
    signals: VerdictSignals = VerdictSignals()
    closest: tuple[str, ...] = ()

    @property
    def level(self) -> str:
        """The outcome as text ("confident", "uncertain", "not in catalogue", "none")."""
        return self.outcome.value

    @property
    def confident(self) -> bool:
        return self.outcome is Outcome.CONFIDENT

    @property
    def absent(self) -> bool:
        return self.outcome is Outcome.ABSENT


def relative_lead(evidence: Iterable[float]) -> float:
    """The best value's lead over the second as a share of its lead over the typical other one (the median of
    those below the second; with two values, of zero): 0 when it does not lead. With the median of all values
    instead, three products would make the runner-up the median and every answer look sure."""
    ordered = sorted((float(e) for e in evidence), reverse=True)
    if len(ordered) < 2:
        return 1.0 if ordered else 0.0
    field = float(np.median(ordered[2:])) if len(ordered) > 2 else 0.0
    spread = ordered[0] - field
    return round(min(1.0, max(0.0, ordered[0] - ordered[1]) / spread), 4) if spread > 1e-9 else 0.0


def relative_margin(ranking: Sequence[ProductScore]) -> float:
    """The verdict's relative margin of a ranking: ``relative_lead`` of its products' evidence."""
    return relative_lead([p.mean_similarity for p in ranking])


def member_tops(frames: Sequence[MemberEvidence]) -> list[str | None]:
    """Each ensemble member's own first product: its per-frame best similarities (``FrameVote.member_similarity``)
    summed over the frames, ties to the smaller id. Empty when the frames carry no member evidence."""
    n = max((len(f.member_similarity) for f in frames), default=0)
    tops: list[str | None] = []
    for m in range(n):
        total: dict[str, float] = {}
        for f in frames:
            if m < len(f.member_similarity):
                for pid, sim in f.member_similarity[m].items():
                    total[pid] = total.get(pid, 0.0) + sim
        tops.append(min(total, key=lambda p: (-total[p], p)) if total else None)
    return tops


def signals_of(ranking: Sequence[ProductScore], frames: Sequence[FrameVote] = ()) -> VerdictSignals:
    """The verdict's signals of a ranking and the frames it was summed from."""
    if not ranking:
        return VerdictSignals(members_agree=0)
    top = ranking[0]
    n = max(1, len(frames)) if frames else max(1, round(top.votes / top.vote_share) if top.vote_share else 1)
    second_votes = ranking[1].votes if len(ranking) > 1 else 0
    tops = member_tops(frames)
    return VerdictSignals(
        relative_margin=relative_margin(ranking), vote_share=round(top.votes / n, 4),
        vote_lead=round((top.votes - second_votes) / n, 4), members=len(tops) or 1,
        members_agree=sum(t == top.product_id for t in tops) if tops else 1,
        frames_agree=round(frames_agreeing(frames, top.product_id) / n, 4) if frames else round(top.votes / n, 4),
        top_similarity=top.mean_similarity)


def frames_agreeing(frames: Sequence[MemberEvidence], product_id: str) -> int:
    """Frames in which every member's best product is ``product_id`` (without member evidence: frames voting for
    it)."""
    def agrees(f: MemberEvidence) -> bool:
        if not f.member_similarity:
            return f.voted_product == product_id
        return all(m and min(m, key=lambda p: (-m[p], p)) == product_id for m in f.member_similarity)

    return sum(agrees(f) for f in frames)


def outcome_of(s: VerdictSignals, rule: VerdictRule = DEFAULT_RULE) -> Outcome:
    """The rule (see the module's docstring) applied to a ranking's signals."""
    if s.unanimous and s.frames_agree >= rule.frames_agree and s.relative_margin >= rule.relative_margin:
        return Outcome.CONFIDENT
    if s.minority or (s.frames_agree <= 0.0 and s.relative_margin < rule.relative_margin):
        return Outcome.ABSENT
    return Outcome.UNCERTAIN


def verdict_from_evidence(ranking: Sequence[ProductScore], frames: Sequence[FrameVote] = (),
                          rule: VerdictRule = DEFAULT_RULE, closest: int = 3) -> Verdict:
    """The verdict of a ranking (products by evidence, best first) and the frames it comes from: a clip's, or a
    timeline segment's (rank its frames with engine.pipeline.votes.rank, then call this)."""
    if not ranking:
        return Verdict(Outcome.NONE, None, None, 0.0, 0, signals=VerdictSignals(members_agree=0))
    s = signals_of(ranking, frames)
    top = ranking[0]
    second = ranking[1] if len(ranking) > 1 else None
    evidence = round(top.mean_similarity - second.mean_similarity, 4) if second else top.mean_similarity
    votes = top.votes - (second.votes if second else 0)
    return Verdict(outcome_of(s, rule), top.product_id, second.product_id if second else None, evidence, votes,
                   s.relative_margin, s, tuple(p.product_id for p in ranking[:closest]))


def verdict_of(ranking: Sequence[ProductScore], threshold: float = CONFIDENT_RELATIVE_MARGIN) -> Verdict:
    """The former rule: confident when the top leads on votes and its relative margin is at least ``threshold``
    (no member agreement, never *not in the catalogue*). The risk-coverage curve and the comparison use it."""
    if not ranking:
        return Verdict(Outcome.NONE, None, None, 0.0, 0)
    top = ranking[0]
    if len(ranking) == 1:
        return Verdict(Outcome.CONFIDENT, top.product_id, None, top.mean_similarity, top.votes, 1.0)
    second = ranking[1]
    evidence, votes = round(top.mean_similarity - second.mean_similarity, 4), top.votes - second.votes
    rel = relative_margin(ranking)
    sure = rel >= threshold and votes > 0
    return Verdict(Outcome.CONFIDENT if sure else Outcome.UNCERTAIN, top.product_id, second.product_id, evidence,
                   votes, rel)
