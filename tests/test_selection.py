"""The honest-selection protocol (nested leave-one-clip-out), the verdict's calibration, and the backbone ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ModelError
from engine.eval.nested import calibrate_verdict, choose_threshold, nested_loco, risk_coverage
from engine.models.ensemble import EnsembleEmbedder, members_of
from engine.types import ClipOutcome, EvalReport, MatchResult, Metrics, ProductScore, RegionOutcome, verdict_of


def _ranking(evidence: dict[str, float], votes: dict[str, int]) -> tuple[ProductScore, ...]:
    order = sorted(evidence, key=lambda p: (-evidence[p], -votes.get(p, 0)))
    return tuple(ProductScore(p, p, votes.get(p, 0), votes.get(p, 0) / 10, evidence[p], evidence[p], (), None)
                 for p in order)


def _outcome(clip: str, truth: str, evidence: dict[str, float], votes: dict[str, int]) -> ClipOutcome:
    ranking = _ranking(evidence, votes)
    result = MatchResult(clip, (), ranking, {}, {})
    return ClipOutcome(clip, truth, result.rank_of(truth), ranking[0].product_id, result)


def _report(outcomes: list[ClipOutcome], region_hits: dict[str, int] | None = None) -> EvalReport:
    regions = tuple(RegionOutcome(o.video_id, i, (0, 0, 1, 1), str(o.truth), 1 if i < (region_hits or {}).get(o.video_id, 0) else 2, None)
                    for o in outcomes for i in range(4))
    return EvalReport("d", {}, Metrics(), tuple(outcomes), regions)


def _clip(clip: str, right: bool) -> ClipOutcome:
    other = "x" if clip != "x" else "y"
    ev = {clip: 0.9, other: 0.8, "z": 0.5} if right else {clip: 0.8, other: 0.9, "z": 0.5}
    return _outcome(clip, clip, ev, {clip: 5, other: 3} if right else {clip: 3, other: 5})


def test_nested_choice_is_made_without_the_held_out_clip() -> None:
    # Set-up A is right on clips a, b, c; B only on d. On each clip the choice is made on the other three: A always
    # (3 or 2 right against at most 1), so the held-out clip d is scored with A and missed.
    a = _report([_clip("a", True), _clip("b", True), _clip("c", True), _clip("d", False)])
    b = _report([_clip("a", False), _clip("b", False), _clip("c", False), _clip("d", True)])
    nested = nested_loco([("A", a), ("B", b)])
    assert [f.chosen for f in nested.folds] == ["A"] * 4
    assert nested.hits == 3 and nested.top1 == 0.75 and nested.chosen_on_all == "A"


def test_nested_figure_is_below_the_best_plain_row_when_the_winner_is_noise() -> None:
    # Each set-up is right on exactly one clip: every plain row scores 1/3, yet the choice made without a clip
    # never picks the set-up that is right on it: nested 0/3.
    rows = []
    for k, name in enumerate("ABC"):
        rows.append((name, _report([_clip(c, c == "abc"[k]) for c in "abc"])))
    nested = nested_loco(rows)
    assert nested.hits == 0


def test_ties_go_to_the_earlier_set_up_and_regions_break_ties() -> None:
    same = [_clip("a", True), _clip("b", True)]
    assert nested_loco([("first", _report(same)), ("second", _report(same))]).chosen_on_all == "first"
    better_regions = _report(same, {"a": 4, "b": 4})
    assert nested_loco([("first", _report(same)), ("second", better_regions)]).chosen_on_all == "second"
    folds = nested_loco([("first", _report(same)), ("second", better_regions)]).folds
    assert all(f.region_boxes == 4 for f in folds) and sum(f.region_hits for f in folds) == 8


def test_relative_margin_verdict() -> None:
    ranking = _ranking({"a": 0.9, "b": 0.85, "c": 0.8, "d": 0.7, "e": 0.6}, {"a": 6, "b": 3})
    v = verdict_of(ranking, 0.2)  # lead 0.05 over the runner-up, 0.2 over the median below it (0.7): relative 0.25
    assert v.level == "confident" and abs(v.relative_margin - 0.25) < 1e-6
    assert verdict_of(ranking, 0.3).level == "uncertain"
    three = _ranking({"a": 0.80, "b": 0.79, "c": 0.5}, {"a": 2, "b": 1})  # a close runner-up in a small catalogue
    assert verdict_of(three, 0.1).level == "uncertain"
    no_vote_lead = _ranking({"a": 0.9, "b": 0.85, "c": 0.8}, {"a": 3, "b": 3})
    assert verdict_of(no_vote_lead, 0.0).level == "uncertain"
    assert verdict_of(()).level == "none"


def test_threshold_is_the_smallest_that_keeps_confident_answers_right() -> None:
    points = [(0.1, True, False), (0.3, True, True), (0.5, True, True), (0.7, True, True)]
    assert choose_threshold(points, 0.9) == pytest.approx(0.2)  # halfway between 0.1 (wrong) and 0.3
    assert choose_threshold([(0.3, True, True), (0.5, True, True)], 0.9) == pytest.approx(0.3)  # nothing below: on it
    assert choose_threshold([(0.05, False, False), (0.3, True, True)], 0.9) == pytest.approx(0.175)  # below: any clip
    assert choose_threshold([(0.2, True, False), (0.4, True, False)], 0.9) > 0.4  # nothing reaches 90%: none
    cal = calibrate_verdict([_clip("a", True), _clip("b", True), _clip("c", False)])
    assert len(cal.folds) == 3 and cal.coverage <= 1.0
    curve = risk_coverage([_clip("a", True), _clip("b", False)])
    assert curve[-1][0] == 1.0 and curve[-1][1] == 0.5


class _Fake:
    def __init__(self, dim: int, seed: int) -> None:
        self.dim, self.key, self.device, self.input_hw = dim, f"fake{seed}", "cpu", (8, 8)
        self.vectors_key, self.runtime, self.precision, self.supports_bands = self.key, "torch", "f32", False
        self._w = np.random.default_rng(seed).normal(size=(8 * 8 * 3, dim)).astype(np.float32)

    def preprocess(self, crops, hw=None):
        return np.stack([c.astype(np.float32).reshape(-1) for c in crops])

    def embed_preprocessed(self, batch):
        v = batch @ self._w
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_ensemble_cosine_is_the_weighted_mean_of_member_cosines() -> None:
    members = [_Fake(5, 1), _Fake(7, 2)]
    ens = EnsembleEmbedder("e", members, [1.0, 3.0])
    crops = [np.random.default_rng(i).integers(0, 255, (8, 8, 3)).astype(np.uint8) for i in range(4)]
    v = ens.embed(crops, batch_size=3)
    assert v.shape == (4, 12) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    per = [m.embed_preprocessed(m.preprocess(crops)) for m in members]
    expected = 0.25 * (per[0] @ per[0].T) + 0.75 * (per[1] @ per[1].T)
    assert np.allclose(v @ v.T, expected, atol=1e-5)
    assert "fake1*0.25" in ens.key and "fake2*0.75" in ens.key


def test_ensemble_specs() -> None:
    assert [m for m, _ in members_of("efficientnet-lite012-gem")] == [
        "efficientnet-lite0-gem", "efficientnet-lite1-gem", "efficientnet-lite2-gem"]
    assert members_of("ensemble:a*2+b") == (("a", 2.0), ("b", 1.0))
    for bad in ("ensemble:a*x", "ensemble:a*-1", "ensemble:", "ensemble:a*nan"):
        with pytest.raises(ModelError):
            members_of(bad)


def test_default_ensemble_on_real_weights_is_normalised_and_shares_members() -> None:
    from engine.models import get_embedder

    ens = get_embedder("efficientnet-lite012-gem", device="cpu", runtime="torch")
    lite0 = get_embedder("efficientnet-lite0-gem", device="cpu", runtime="torch")
    assert ens.members[0] is lite0 and ens.dim == 320 + 320 + 352 and ens.supports_bands
    crops = [np.random.default_rng(i).integers(0, 255, (120, 80, 3)).astype(np.uint8) for i in range(3)]
    v = ens.embed(crops)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert np.allclose(v[:, :320] * np.sqrt(3), lite0.embed(crops), atol=1e-4)
    bands = ens.embed_bands(crops[:1], [(0.0, 1.0), (0.2, 0.6)])
    assert bands.shape == (1, 2, 992) and np.allclose(np.linalg.norm(bands, axis=2), 1.0, atol=1e-4)


def test_product_pooling_mean_needs_every_view_to_fit() -> None:
    from engine.pipeline.search import pool_product

    # Two windows; a product with three catalogue regions and one livestream example (last column).
    sims = np.array([[0.9, 0.2, 0.1, 0.3],
                     [0.5, 0.5, 0.5, 0.6]], np.float32)
    assert np.allclose(pool_product(sims, 3, "max"), [0.9, 0.6])
    assert np.allclose(pool_product(sims, 3, "mean"), [0.4, 0.6])  # the example still counts on its own
    assert np.allclose(pool_product(sims[:, :3], 3, "mean"), [0.4, 0.5])
    with pytest.raises(ValueError):
        pool_product(sims, 3, "median")
