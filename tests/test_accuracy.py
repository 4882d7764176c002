"""The accuracy changes: domain centring in the index, evidence summed over frames, the verdict, per-box outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import IndexFileError, ModelError
from engine.index.protocol import IndexSpec
from engine.index.store import ProductIndex, write_index
from engine.models.domain import DomainMean, l2_normalise, resolve, robust_mean, shipped_path
from engine.pipeline.votes import frame_vote, rank
from engine.types import RegionRef


def _unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    return l2_normalise(rng.normal(size=(n, dim)).astype(np.float32))


def test_a_centred_index_centres_both_domains(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shop = _unit(rng, 12) + 2.0  # a strong shared shop component
    items = [RegionRef(f"p{i // 3}", f"{i}.jpg", (0, 0, 1, 1), source="annotation") for i in range(12)]
    live_mean = np.full(16, -1.5, np.float32)
    write_index(tmp_path / "ix", IndexSpec(shop, items, {f"p{k}": {} for k in range(4)}, "m+centred",
                                           query_mean=live_mean))
    index = ProductIndex.load(tmp_path / "ix", "m+centred")
    expected = l2_normalise(shop - shop.mean(0))
    assert np.allclose(index.vectors, expected, atol=1e-5)
    # a livestream view of item 4: the same content plus the livestream component
    query = shop[4] - shop.mean(0) + live_mean
    hits = index.search(query, 1)
    assert hits[0][0] == 4 and hits[0][1] > 0.99
    sims = index.product_similarities(query[None], ["p1"])["p1"][0]
    assert sims.max() > 0.99
    with pytest.raises(IndexFileError):  # an engine without centring (another key) refuses it
        ProductIndex.load(tmp_path / "ix", "m")


def test_an_uncentred_index_searches_queries_as_they_are(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    v = _unit(rng, 6)
    items = [RegionRef(f"p{i}", "x.jpg", (0, 0, 1, 1), source="annotation") for i in range(6)]
    write_index(tmp_path / "ix", IndexSpec(v, items, {f"p{i}": {} for i in range(6)}, "m"))
    index = ProductIndex.load(tmp_path / "ix", "m")
    assert index.query_mean is None and np.array_equal(index.prepare(v), v)


def test_the_shipped_mean_belongs_to_its_embedder(tmp_path: Path) -> None:
    key = "efficientnet-lite0-gem/in1k/288x224/p3/v1"
    shipped = resolve("auto", key)
    assert shipped is not None and shipped.vector.shape == (320,) and Path(shipped.source) == shipped_path(key)
    assert resolve("auto", "another/embedder") is None and resolve("none", key) is None
    with pytest.raises(ModelError):  # explicitly another embedder's file: refused
        DomainMean.load(shipped_path(key), "another/embedder")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    with pytest.raises(ModelError):
        resolve(str(bad), key)


def test_the_median_is_barely_moved_by_one_clip() -> None:
    rng = np.random.default_rng(2)
    others = rng.normal(size=(60, 8)).astype(np.float32)
    clip = np.full((10, 8), 9.0, np.float32)  # one clip's product, far from the rest
    with_clip = np.concatenate([others, clip])
    assert np.abs(robust_mean(with_clip) - robust_mean(others)).max() < 0.5
    assert np.abs(with_clip.mean(0) - others.mean(0)).max() > 1.0


def _frames(per_frame: list[dict[str, float]]):
    return [frame_vote(i, float(i), [], sims, "detector") for i, sims in enumerate(per_frame)]


def test_evidence_summed_over_frames_can_beat_votes() -> None:
    # B wins 3 frames by a hair; A wins 2 by a lot, and is close in the rest
    frames = _frames([{"A": 0.60, "B": 0.61}] * 3 + [{"A": 0.9, "B": 0.3}] * 2)
    by_evidence = rank(frames, {}, "similarity")
    by_votes = rank(frames, {}, "votes")
    assert [p.product_id for p in by_evidence] == ["A", "B"] and by_evidence[0].votes == 2
    assert [p.product_id for p in by_votes] == ["B", "A"]
    assert frames[0].margin == pytest.approx(0.01, abs=1e-4)


def test_a_close_call_is_uncertain_and_names_the_runner_up() -> None:
    from engine.types import MatchResult

    tie = MatchResult("c.mp4", tuple(_frames([{"A": 0.7, "B": 0.69}, {"A": 0.69, "B": 0.7}])),
                      tuple(rank(_frames([{"A": 0.7, "B": 0.69}, {"A": 0.69, "B": 0.7}]), {})), {}, {})
    verdict = tie.verdict
    assert verdict.level == "uncertain" and not verdict.confident and {verdict.top, verdict.runner_up} == {"A", "B"}
    clear = MatchResult("c.mp4", (), tuple(rank(_frames([{"A": 0.9, "B": 0.5}] * 3), {})), {}, {})
    assert clear.verdict.confident and clear.verdict.vote_margin == 3
    assert MatchResult("c.mp4", (), (), {}, {}).verdict.level == "none"


@pytest.mark.slow
def test_the_report_lists_every_annotated_box_with_its_rank(engine, demo_dir: Path) -> None:
    from engine.eval.evaluate import evaluate, load_report, save_report
    from engine.io.catalogue import load_catalogue

    report = evaluate(demo_dir, engine.settings, engine=engine)
    catalogue = load_catalogue(demo_dir)
    boxes = sum(1 for c in catalogue.clips.values() if c.path for _, regs in c.frames for r in regs if r.instance_id)
    assert len(report.regions) == boxes == report.metrics.region_boxes > 0
    assert all(r.truth == r.video_id and (r.rank is None or r.rank >= 1) for r in report.regions)
    hits = sum(r.rank == 1 for r in report.regions)
    assert report.metrics.region_top1 == round(hits / boxes, 4)
    again = load_report(save_report(report, Path(engine.settings.home) / "reports" / "accuracy-test.json"))
    assert again == report  # typed all the way: saved and read back as the same records
    assert json.loads(json.dumps(report.to_dict()))["regions"][0]["rank"] == report.regions[0].rank
