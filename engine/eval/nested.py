"""Honest selection on few clips: nested leave-one-clip-out, and a verdict calibrated the same way.

With a handful of development clips, the set-up that is best on all of them is partly chosen by noise. The nested
figure measures the *procedure* instead: for each clip, the set-up that is best on the OTHER clips (by clip top-1,
then MRR, then region top-1; ties to the earlier set-up of the registry, so a change must beat what is listed
before it) is scored on
the clip left out. Its mean over clips is what a new clip can expect from choosing that way; a change becomes a
default only when it wins there. Region top-1 is pooled over the held-out clips' boxes, each under the set-up chosen
without that clip.

The verdict's threshold (a relative margin, see engine.types.verdict_of) is calibrated the same way: for each clip,
the smallest threshold whose confident answers on the other clips are at least ``target`` right, applied to the clip
left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from engine.types import ClipOutcome, EvalReport, OpenSetOutcome, relative_margin, verdict_of
from engine.verdict import CONFIDENT_RELATIVE_MARGIN, Outcome, VerdictRule, VerdictSignals, outcome_of, signals_of


@dataclass(frozen=True)
class HeldOut:
    """One fold: the clip left out, the set-up chosen on the others, and how that set-up did on the clip."""

    clip: str
    chosen: str
    rank: int | None
    region_hits: int
    region_boxes: int


@dataclass(frozen=True)
class NestedResult:
    """The nested leave-one-clip-out figure of a comparison."""

    folds: tuple[HeldOut, ...]
    top1: float
    mrr: float
    region_top1: float
    chosen_on_all: str  # the set-up the same rule picks on every clip: what would become the default

    @property
    def hits(self) -> int:
        return sum(f.rank == 1 for f in self.folds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scored(report: EvalReport) -> dict[str, ClipOutcome]:
    return {o.video_id: o for o in report.clips if o.truth is not None}


def selection_key(report: EvalReport, clips: set[str]) -> tuple[float, float, float]:
    """(top-1, MRR, region top-1) of a report restricted to ``clips``: the order set-ups are chosen by."""
    outcomes = [o for cid, o in _scored(report).items() if cid in clips]
    regions = [r for r in report.regions if r.video_id in clips]
    n = max(1, len(outcomes))
    return (round(sum(o.truth_rank == 1 for o in outcomes) / n, 9),
            round(sum(1.0 / o.truth_rank for o in outcomes if o.truth_rank) / n, 9),
            round(sum(r.rank == 1 for r in regions) / max(1, len(regions)), 9))


def _best(rows: list[tuple[str, EvalReport]], clips: set[str]) -> str:
    best_name, best_key = rows[0][0], selection_key(rows[0][1], clips)
    for name, report in rows[1:]:
        key = selection_key(report, clips)
        if key > best_key:  # strictly better: ties stay with the earlier set-up
            best_name, best_key = name, key
    return best_name


def nested_loco(rows: list[tuple[str, EvalReport]]) -> NestedResult:
    """The nested leave-one-clip-out figure of set-ups evaluated on the same clips."""
    if not rows:
        raise ValueError("no set-ups to choose from")
    clips = sorted(set.intersection(*(set(_scored(r)) for _, r in rows)))
    by_name = dict(rows)
    folds = []
    for clip in clips:
        chosen = _best(rows, set(clips) - {clip}) if len(clips) > 1 else rows[0][0]
        report = by_name[chosen]
        outcome = _scored(report)[clip]
        regions = [r for r in report.regions if r.video_id == clip]
        folds.append(HeldOut(clip, chosen, outcome.truth_rank, sum(r.rank == 1 for r in regions), len(regions)))
    n = max(1, len(folds))
    boxes = sum(f.region_boxes for f in folds)
    return NestedResult(
        tuple(folds), round(sum(f.rank == 1 for f in folds) / n, 4),
        round(sum(1.0 / f.rank for f in folds if f.rank) / n, 4),
        round(sum(f.region_hits for f in folds) / boxes, 4) if boxes else 0.0,
        _best(rows, set(clips)) if clips else rows[0][0])


def format_nested(nested: NestedResult) -> str:
    lines = ["nested leave-one-clip-out (the set-up chosen on the other clips, scored on the one left out):",
             f"{'clip':<10} {'rank':>5} {'region':>8}  chosen on the other clips"]
    for f in nested.folds:
        lines.append(f"{f.clip:<10} {str(f.rank or '-'):>5} {f.region_hits:>3}/{f.region_boxes:<4}  {f.chosen}")
    lines.append(f"nested: clip top-1 {nested.hits}/{len(nested.folds)} ({nested.top1:.3f})  MRR {nested.mrr:.3f}  "
                 f"region top-1 {nested.region_top1:.3f} (leave-clip-out)")
    lines.append(f"chosen on all clips (the default it supports): {nested.chosen_on_all}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- the verdict
@dataclass(frozen=True)
class VerdictFold:
    clip: str
    threshold: float  # chosen on the other clips
    relative_margin: float
    confident: bool
    correct: bool


@dataclass(frozen=True)
class VerdictCalibration:
    """The verdict's threshold, chosen on all clips and leave-one-clip-out, with the held-out verdicts' accuracy."""

    target: float
    threshold_all: float
    folds: tuple[VerdictFold, ...]

    @property
    def confident(self) -> list[VerdictFold]:
        return [f for f in self.folds if f.confident]

    @property
    def confident_accuracy(self) -> float | None:
        c = self.confident
        return round(sum(f.correct for f in c) / len(c), 4) if c else None

    @property
    def uncertain_accuracy(self) -> float | None:
        u = [f for f in self.folds if not f.confident]
        return round(sum(f.correct for f in u) / len(u), 4) if u else None

    @property
    def coverage(self) -> float:
        return round(len(self.confident) / max(1, len(self.folds)), 4)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confident_accuracy": self.confident_accuracy,
                "uncertain_accuracy": self.uncertain_accuracy, "coverage": self.coverage}


def choose_threshold(points: list[tuple[float, bool, bool]], target: float) -> float:
    """The smallest relative-margin threshold whose confident answers (margin >= threshold and a vote lead) are at
    least ``target`` right on ``points`` (relative margin, vote lead, correct); set halfway down to the nearest
    margin observed below it (of any clip) so it does not sit on a sample, or on it when none was observed below
    (nothing is known there). Above every margin when no threshold reaches the target."""
    margins = sorted({m for m, lead, _ in points if lead})
    seen = sorted({m for m, _, _ in points})
    for t in margins:
        chosen = [ok for m, lead, ok in points if lead and m >= t]
        if chosen and sum(chosen) / len(chosen) >= target:
            below = [m for m in seen if m < t]  # the nearest margin observed below (any clip): halfway to it
            return round((t + below[-1]) / 2, 4) if below else round(t, 4)
    return round((margins[-1] if margins else 0.0) + 1e-3, 4)


def _point(o: ClipOutcome) -> tuple[float, bool, bool]:
    v = o.result.verdict
    return relative_margin(o.result.ranking), v.vote_margin > 0, o.correct


def calibrate_verdict(outcomes: list[ClipOutcome] | tuple[ClipOutcome, ...], target: float = 0.9) -> VerdictCalibration:
    """The verdict threshold chosen on all clips, and each clip's verdict under the threshold chosen without it."""
    scored = [o for o in outcomes if o.truth is not None and o.result.ranking]
    folds = []
    for o in scored:
        others = [_point(x) for x in scored if x is not o]
        t = choose_threshold(others, target) if others else 0.0
        v = verdict_of(o.result.ranking, t)
        folds.append(VerdictFold(o.video_id, t, v.relative_margin, v.confident, o.correct))
    return VerdictCalibration(target, choose_threshold([_point(o) for o in scored], target), tuple(folds))


def format_calibration(cal: VerdictCalibration) -> str:
    acc = "-" if cal.confident_accuracy is None else f"{cal.confident_accuracy:.2f}"
    unc = "-" if cal.uncertain_accuracy is None else f"{cal.uncertain_accuracy:.2f}"
    return (f"former verdict (relative margin and a vote lead), leave-one-clip-out (threshold chosen on the other "
            f"clips for >= {cal.target:.0%} right): "
            f"{len(cal.confident)} of {len(cal.folds)} clips confident (coverage {cal.coverage:.2f}), "
            f"confident right {acc}, uncertain right {unc}; threshold on all clips {cal.threshold_all:.3f}")


_SURENESS = {"confident": 0, "uncertain": 1, "not in catalogue": 2, "none": 3}


def risk_coverage(outcomes: list[ClipOutcome] | tuple[ClipOutcome, ...]) -> list[tuple[float, float, float, str]]:
    """(coverage, risk, vote lead, outcome) when only the surest clips are answered: confident first, then uncertain,
    then not in the catalogue, within each the larger vote lead (then relative margin) first. The risk-coverage
    curve of the verdict."""
    rows = []
    for o in outcomes:
        if o.truth is None or not o.result.ranking:
            continue
        v = o.result.verdict
        rows.append((_SURENESS[v.level], -v.signals.vote_lead, -v.relative_margin, v.signals.vote_lead, v.level,
                     o.correct))
    rows.sort(key=lambda r: r[:3])
    out, wrong = [], 0
    for i, r in enumerate(rows, 1):
        wrong += not r[5]
        out.append((round(i / len(rows), 4), round(wrong / i, 4), r[3], r[4]))
    return out


# ------------------------------------------------------------------- the three-outcome verdict (with the open set)
@dataclass(frozen=True)
class RuleExample:
    """One clip under the verdict: with its product present ("right" or "wrong" top-1) or removed ("absent")."""

    clip: str
    kind: str  # "right", "wrong" or "absent"
    signals: VerdictSignals


@dataclass(frozen=True)
class RuleFit:
    """A rule chosen on some clips, and the clips whose examples decided its threshold."""

    rule: VerdictRule
    decided_by: tuple[str, ...]  # the example it must exclude (wrong or absent) and the one just above it


@dataclass(frozen=True)
class RuleFold:
    clip: str
    rule: VerdictRule  # chosen on the other clips
    present: str  # the held-out clip's outcome with its product present
    correct: bool
    absent: str | None  # ... and with it removed (None: no open-set run of that clip)


@dataclass(frozen=True)
class RuleCalibration:
    """The three-outcome rule fitted on every clip, and each clip's outcomes under the rule fitted without it."""

    fit_all: RuleFit
    folds: tuple[RuleFold, ...]

    def count(self, which: str, outcome: Outcome) -> int:
        return sum(getattr(f, which) == outcome.value for f in self.folds)

    @property
    def confident_right(self) -> int:
        return sum(f.correct for f in self.folds if f.present == Outcome.CONFIDENT.value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_rule(examples: list[RuleExample], relative: float = CONFIDENT_RELATIVE_MARGIN) -> RuleFit:
    """The rule's one fitted threshold, the share of frames on which every member agrees, chosen on ``examples``:
    among the examples whose members all rank the top first and whose relative margin is at least ``relative`` (the
    former threshold, not refitted), just above the largest share of an example that must not be confident (a wrong
    top-1, or a clip whose product is absent): halfway to the next share observed above it among them; above every
    share when none is above it; at the smallest when none must be excluded (nothing is known below it). "Not in
    the catalogue" has no threshold (fewer than half the members agree)."""
    eligible = [e for e in examples if e.signals.unanimous and e.signals.relative_margin >= relative]
    bad = [e for e in eligible if e.kind != "right"]
    key = lambda e: e.signals.frames_agree  # noqa: E731
    if bad:
        worst = max(bad, key=key)
        above = [e for e in eligible if key(e) > key(worst) + 1e-9]
        if above:
            nxt = min(above, key=key)
            t, by = round((key(worst) + key(nxt)) / 2, 4), (worst.clip, nxt.clip)
        else:
            t, by = round(key(worst) + 0.05, 4), (worst.clip,)
    elif eligible:
        low = min(eligible, key=key)
        t, by = round(key(low), 4), (low.clip,)
    else:
        t, by = 1.01, ()
    return RuleFit(VerdictRule(frames_agree=t, relative_margin=relative), by)


def rule_examples(closed: list[ClipOutcome] | tuple[ClipOutcome, ...],
                  open_set: list[OpenSetOutcome] | tuple[OpenSetOutcome, ...] = ()) -> list[RuleExample]:
    """The clips as examples of the rule: present (right or wrong top-1) and, from the open set, absent."""
    out = [RuleExample(o.video_id, "right" if o.correct else "wrong", signals_of(o.result.ranking, o.result.frames))
           for o in closed if o.truth is not None and o.result.ranking]
    return out + [RuleExample(o.video_id, "absent", signals_of(o.result.ranking, o.result.frames))
                  for o in open_set if o.result.ranking]


def calibrate_rule(closed: list[ClipOutcome] | tuple[ClipOutcome, ...],
                   open_set: list[OpenSetOutcome] | tuple[OpenSetOutcome, ...] = ()) -> RuleCalibration:
    """Leave-one-clip-out: for each clip, the rule fitted on the other clips' examples (present and absent) and
    applied to this clip's two (a clip's present and absent runs leave together)."""
    examples = rule_examples(closed, open_set)
    folds = []
    for clip in sorted({e.clip for e in examples if e.kind != "absent"}):
        rule = fit_rule([e for e in examples if e.clip != clip]).rule
        mine = {e.kind: e for e in examples if e.clip == clip}
        present = mine["right"] if "right" in mine else mine["wrong"]
        absent = mine.get("absent")
        folds.append(RuleFold(clip, rule, outcome_of(present.signals, rule).value, present.kind == "right",
                              outcome_of(absent.signals, rule).value if absent else None))
    return RuleCalibration(fit_rule(examples), tuple(folds))


def format_rule_calibration(cal: RuleCalibration) -> str:
    c, u, a = Outcome.CONFIDENT, Outcome.UNCERTAIN, Outcome.ABSENT
    n_open = sum(f.absent is not None for f in cal.folds)
    r = cal.fit_all.rule
    by = cal.fit_all.decided_by
    return (f"three-outcome verdict, leave-one-clip-out (rule fitted on the other clips, present and removed): "
            f"present: {cal.count('present', c)} of {len(cal.folds)} confident ({cal.confident_right} right), "
            f"{cal.count('present', u)} uncertain, {cal.count('present', a)} not in catalogue; removed: "
            f"{cal.count('absent', c)} of {n_open} confident, {cal.count('absent', a)} not in catalogue, "
            f"{cal.count('absent', u)} uncertain; thresholds "
            f"{', '.join(f'{f.rule.frames_agree:.2f}' for f in cal.folds)}. "
            f"Fitted on all clips: members agree in >= {r.frames_agree:.2f} of the frames (decided by "
            f"{len(by)} clip{'s' if len(by) != 1 else ''}: {', '.join(by) or '-'})")
