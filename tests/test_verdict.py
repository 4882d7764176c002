"""The three-outcome verdict (engine.verdict): confident, uncertain, not in the catalogue, on synthetic rankings with
per-member evidence; its leave-one-clip-out calibration with present and absent runs (engine.eval.nested); the
open-set evaluation on a small generated dataset (engine.eval.openset) and the CLI's outcome line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.eval.nested import RuleExample, calibrate_rule, fit_rule
from engine.pipeline.votes import frame_vote, rank
from engine.types import ClipOutcome, MatchResult, OpenSetOutcome
from engine.verdict import (DEFAULT_RULE, Outcome, VerdictRule, VerdictSignals, member_tops, outcome_of,
                            verdict_from_evidence)

RULE = VerdictRule(frames_agree=0.35, relative_margin=0.169)


def _result(per_frame: list[dict[str, float]], members: list[list[dict[str, float]]] | None = None) -> MatchResult:
    """A match of frames with these per-product similarities (and, per frame, each member's own)."""
    frames = [frame_vote(i, float(i), [], sims, "detector", tuple(members[i]) if members else ())
              for i, sims in enumerate(per_frame)]
    return MatchResult("c.mp4", tuple(frames), tuple(rank(frames, {})), {}, {})


def _agreeing(per_frame: list[dict[str, float]], n: int = 3) -> list[list[dict[str, float]]]:
    return [[dict(sims) for _ in range(n)] for sims in per_frame]


CLEAR = [{"A": 0.90, "B": 0.60, "C": 0.50, "D": 0.40}] * 8 + [{"A": 0.60, "B": 0.70, "C": 0.5, "D": 0.4}] * 2


SCATTERED = [{"A": 0.81, "B": 0.79, "C": 0.78, "D": 0.5}, {"A": 0.79, "B": 0.81, "C": 0.78, "D": 0.5},
             {"A": 0.80, "B": 0.78, "C": 0.81, "D": 0.5}, {"A": 0.81, "B": 0.78, "C": 0.79, "D": 0.5},
             {"A": 0.78, "B": 0.81, "C": 0.79, "D": 0.5}]  # votes A 2, B 2, C 1; evidence A > B > C


def test_a_clear_lead_with_every_member_agreeing_is_confident() -> None:
    v = verdict_from_evidence(_result(CLEAR, _agreeing(CLEAR)).ranking, _result(CLEAR, _agreeing(CLEAR)).frames, RULE)
    assert v.outcome is Outcome.CONFIDENT and v.confident and v.level == "confident"
    assert v.signals.members == 3 and v.signals.members_agree == 3 and v.signals.vote_lead == pytest.approx(0.6)
    assert v.signals.frames_agree == pytest.approx(0.8)


def test_a_clear_lead_on_which_the_members_disagree_is_not_confident() -> None:
    # the combined evidence and the votes favour A clearly; one member of three ranks B first
    members = [[dict(s), dict(s), {**s, "B": s["A"] + 0.05}] for s in CLEAR]
    result = _result(CLEAR, members)
    v = verdict_from_evidence(result.ranking, result.frames, RULE)
    assert v.signals.vote_lead == pytest.approx(0.6) and v.signals.relative_margin > 0.169
    assert member_tops(result.frames) == ["A", "A", "B"] and v.signals.members_agree == 2
    assert v.signals.frames_agree == 0.0  # in no frame do all three put A first
    assert v.outcome is Outcome.UNCERTAIN  # two of three agree: not "not in the catalogue" either


def test_members_agreeing_on_the_clip_but_rarely_in_a_frame_is_not_confident() -> None:
    # every member's summed evidence puts A first, but in 8 of 10 frames one member or another prefers B or C
    members = [[dict(s), dict(s), dict(s)] if i < 2 else
               [dict(s), {**s, "B": s["A"] + 0.01}, dict(s)] if i % 2 else [{**s, "C": s["A"] + 0.01}, dict(s), dict(s)]
               for i, s in enumerate(CLEAR)]
    result = _result(CLEAR, members)
    s = result.verdict.signals
    assert s.unanimous and s.frames_agree == pytest.approx(0.2)
    assert verdict_from_evidence(result.ranking, result.frames, RULE).outcome is Outcome.UNCERTAIN


def test_scattered_votes_and_disagreeing_members_are_not_in_the_catalogue() -> None:
    per_frame = SCATTERED
    members = [[dict(s), {**s, "B": 0.9}, {**s, "C": 0.9}] for s in per_frame]
    result = _result(per_frame, members)
    v = result.verdict
    assert v.signals.vote_share < 0.5 and not v.signals.unanimous
    assert v.outcome is Outcome.ABSENT and v.absent and v.level == "not in catalogue"
    assert v.closest == ("A", "B", "C")  # the nearest products, "closest, not a match"


def test_a_close_call_on_which_the_members_agree_is_uncertain() -> None:
    per_frame = [{"A": 0.80, "B": 0.79, "C": 0.5}, {"A": 0.78, "B": 0.80, "C": 0.5}, {"A": 0.81, "B": 0.79, "C": 0.4}]
    result = _result(per_frame, _agreeing(per_frame))
    assert result.verdict.outcome is Outcome.UNCERTAIN and result.verdict.runner_up == "B"


def test_nothing_matched_is_none_and_old_frames_without_members_count_as_one() -> None:
    assert MatchResult("c.mp4", (), (), {}, {}).verdict.outcome is Outcome.NONE
    v = _result(CLEAR).verdict  # no member evidence recorded: the combined ranking is the one member
    assert v.signals.members == 1 and v.signals.members_agree == 1


def test_each_condition_of_the_rule_is_needed_for_confident() -> None:
    def sig(rel: float, agree: int, frames: float) -> VerdictSignals:
        return VerdictSignals(relative_margin=rel, vote_share=0.9, vote_lead=0.8, members=4, members_agree=agree,
                              frames_agree=frames)

    assert outcome_of(sig(0.5, 4, 0.6), RULE) is Outcome.CONFIDENT
    assert outcome_of(sig(0.5, 3, 0.6), RULE) is Outcome.UNCERTAIN  # one member disagrees
    assert outcome_of(sig(0.1, 4, 0.6), RULE) is Outcome.UNCERTAIN  # relative margin under the floor
    assert outcome_of(sig(0.5, 4, 0.3), RULE) is Outcome.UNCERTAIN  # members agree in too few frames
    assert outcome_of(sig(0.5, 2, 0.6), RULE) is Outcome.UNCERTAIN  # half agree: not a minority
    assert outcome_of(sig(0.5, 1, 0.0), RULE) is Outcome.ABSENT  # fewer than half


def test_member_evidence_survives_the_report() -> None:
    result = _result(CLEAR, _agreeing(CLEAR))
    again = MatchResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.frames[0].member_similarity == result.frames[0].member_similarity
    assert again.verdict == result.verdict


def test_the_json_report_carries_each_outcome_and_reads_back() -> None:
    from engine.types import EvalReport, Metrics

    present = _clip("a", True, CLEAR, _agreeing(CLEAR))
    absent = OpenSetOutcome("a", "A", "B", _result(SCATTERED, [[dict(s), {**s, "B": 0.95}, {**s, "C": 0.95}]
                                                               for s in SCATTERED]))
    report = EvalReport("d", {}, Metrics(), (present,), open_set=(absent,))
    d = json.loads(json.dumps(report.to_dict()))
    assert d["verdicts"] == {"clips": {"a": "confident"}, "open_set": {"a": "not in catalogue"}}
    assert EvalReport.from_dict(d) == report


def _ex(clip: str, kind: str, frames: float, agree: int = 3) -> RuleExample:
    return RuleExample(clip, kind, VerdictSignals(0.5, 0.8, 0.6, 3, agree, frames))


def test_the_rule_is_fitted_to_exclude_every_wrong_and_absent_example() -> None:
    examples = [_ex("a", "right", 0.8), _ex("b", "right", 0.6), _ex("c", "wrong", 0.4), _ex("a", "absent", 0.2),
                _ex("b", "absent", 0.7, agree=1), _ex("d", "right", 0.5, agree=2)]
    fit = fit_rule(examples)
    # b's absent run and d's right one do not count (members disagree): between c (0.4, wrong) and b's 0.6
    assert fit.rule.frames_agree == pytest.approx(0.5) and fit.decided_by == ("c", "b")
    assert all(outcome_of(e.signals, fit.rule) is not Outcome.CONFIDENT for e in examples if e.kind != "right")
    assert fit_rule([_ex("a", "right", 0.8), _ex("b", "absent", 0.9)]).rule.frames_agree > 0.9  # none above


def _clip(vid: str, right: bool, per_frame, members) -> ClipOutcome:
    result = _result(per_frame, members)
    truth = result.ranking[0].product_id if right else "Z"
    return ClipOutcome(vid, truth, 1 if right else 2, result.ranking[0].product_id, result)


def test_leave_one_clip_out_keeps_a_clips_present_and_absent_runs_together() -> None:
    scattered = SCATTERED
    split = [[dict(s), {**s, "B": 0.95}, {**s, "C": 0.95}] for s in scattered]
    closed = [_clip(v, True, CLEAR, _agreeing(CLEAR)) for v in ("a", "b", "c")]
    absent = [OpenSetOutcome(v, v, "A", _result(scattered, split)) for v in ("a", "b", "c")]
    cal = calibrate_rule(closed, absent)
    assert [f.clip for f in cal.folds] == ["a", "b", "c"]
    assert all(f.present == "confident" and f.correct for f in cal.folds)
    assert all(f.absent == "not in catalogue" for f in cal.folds)


def test_the_default_rule_is_what_the_docs_say() -> None:
    from engine.verdict import CONFIDENT_RELATIVE_MARGIN

    assert DEFAULT_RULE.relative_margin == CONFIDENT_RELATIVE_MARGIN
    text = (Path(__file__).resolve().parents[1] / "docs" / "accuracy.md").read_text(encoding="utf-8")
    assert f"in at least {DEFAULT_RULE.frames_agree} of the sampled frames" in text


@pytest.mark.slow
def test_open_set_evaluation_removes_each_clips_product(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated dataset evaluated with --open-set from the command line: every clip is matched once more with
    its own product absent, its answer is another product, and the outcome is printed."""
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path / "home"))
    data = tmp_path / "demo"
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine", *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=900, cwd=Path(__file__).resolve().parents[1])
    assert run("demo", "--out", str(data), "--products", "5", "--clips", "3").returncode == 0
    out = run("evaluate", "--dataset", str(data), "--open-set", "--report", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    present = [c["video_id"] for c in report["clips"] if c["truth"] is not None]  # the absent product's clip has none
    assert len(present) == 3 and len(report["clips"]) == 4
    assert sorted(o["video_id"] for o in report["open_set"]) == sorted(present)
    assert set(report["verdicts"]["open_set"]) == {o["video_id"] for o in report["open_set"]}
    for o in report["open_set"]:
        assert o["removed"] == o["video_id"] and o["top"] not in (None, o["removed"])
        assert all(p["product_id"] != o["removed"] for p in o["result"]["ranking"])
    assert "open set:" in out.stdout and "clips confident" in out.stdout
    assert any(w in out.stdout for w in ("confident", "uncertain", "not in catalogue"))
    match = run("match", "--catalogue", str(data), str(next((data / "video").glob("*.mp4"))))
    assert match.returncode == 0, match.stderr
    assert any(s in match.stdout for s in ("confident:", "uncertain:", "not in the catalogue:"))


def _member_vectors(rng, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n ensemble vectors of two members (4 dims each, equal weights): each member part unit-norm, scaled by
    sqrt(0.5), concatenated (norm 1), as engine.models.ensemble builds them; and the two raw parts."""
    a = rng.normal(size=(n, 4)).astype(np.float32)
    b = rng.normal(size=(n, 4)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return np.concatenate([a, b], axis=1) * np.float32(np.sqrt(0.5)), a, b


def test_member_similarities_are_each_members_cosine_and_match_the_search(tmp_path: Path) -> None:
    from engine.config import SearchSettings
    from engine.index.protocol import IndexSpec
    from engine.index.store import ProductIndex, write_index
    from engine.pipeline.search import RegionPlan, member_similarities, search_region
    from engine.types import RegionRef

    rng = np.random.default_rng(0)
    v, a, b = _member_vectors(rng, 6)  # six products, one region each
    items = [RegionRef(f"p{i}", f"p{i}.jpg", (0.0, 0.0, 1.0, 1.0)) for i in range(6)]
    write_index(tmp_path / "ix", IndexSpec(v, items, {f"p{i}": {} for i in range(6)}, "m", n_trees=5))
    index = ProductIndex.load(tmp_path / "ix")
    q, qa, qb = _member_vectors(rng, 1)
    members = ((slice(0, 4), 0.5), (slice(4, 8), 0.5))
    mean = SearchSettings(neighbours=6, product_pooling="mean")
    per_member = member_similarities(index, q, [f"p{i}" for i in range(6)], members, mean)
    for i in range(6):  # each member's own cosine, not the weighted one
        assert per_member[0][f"p{i}"] == pytest.approx(float(qa[0] @ a[i]), abs=1e-3)
        assert per_member[1][f"p{i}"] == pytest.approx(float(qb[0] @ b[i]), abs=1e-3)
    # the whole vector as the one member gives what the search ranks by
    windows, _, _ = _member_vectors(rng, 3)
    _, sims = search_region(index, RegionPlan((0.0, 0.0, 1.0, 1.0), [(0.0, 0.0, 1.0, 1.0)] * 3, [], 1.0, "person"),
                            windows, mean)
    whole = member_similarities(index, windows, list(sims), ((slice(0, 8), 1.0),), mean)[0]
    assert whole == pytest.approx(sims, abs=1e-3)


def test_a_timeline_segment_gets_the_clip_verdicts_three_outcomes():
    """A segment's verdict follows the clip's rule: members agreeing in every frame make it confident; members that
    each rank another product first make it "not in catalogue"; without member evidence the votes stand in."""
    from engine.pipeline.segments import FrameEvidence, segment

    def frame(i: int, members: tuple[dict[str, float], ...]) -> FrameEvidence:
        sim = {"A": 0.9, "B": 0.7, "C": 0.6, "D": 0.5}
        return FrameEvidence(i, 2.0 * i, sim, "A", members)

    agree = tuple({"A": 0.9, "B": 0.7, "C": 0.6} for _ in range(3))
    split = ({"A": 0.9, "B": 0.7}, {"B": 0.9, "A": 0.7}, {"C": 0.9, "A": 0.7})
    sure = segment([frame(i, agree) for i in range(6)], 12.0, 2.0)
    absent = segment([frame(i, split) for i in range(6)], 12.0, 2.0)
    bare = segment([frame(i, ()) for i in range(6)], 12.0, 2.0)
    assert [s.verdict for s in sure] == ["confident"]
    assert [s.verdict for s in absent] == ["not in catalogue"]
    assert [s.verdict for s in bare] == ["confident"]


def test_no_frame_of_agreement_and_no_clear_lead_is_not_in_the_catalogue():
    """Members that agree on the clip's sum but never within one frame, with no clear lead: no product is
    consistently nearest. The same frame share with a clear lead stays uncertain."""
    from engine.verdict import Outcome, VerdictSignals, outcome_of

    never = VerdictSignals(relative_margin=0.02, members=3, members_agree=2, frames_agree=0.0)
    lead = VerdictSignals(relative_margin=0.22, members=3, members_agree=2, frames_agree=0.0)
    some = VerdictSignals(relative_margin=0.02, members=3, members_agree=2, frames_agree=0.2)
    assert outcome_of(never) is Outcome.ABSENT
    assert outcome_of(lead) is Outcome.UNCERTAIN
    assert outcome_of(some) is Outcome.UNCERTAIN
