"""The learned parts, trained on the generated demo: triplet head, garment head, categories, cross-validation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.io.catalogue import load_catalogue
from engine.categories import merged
from engine.errors import ModelError
from engine.eval.detection import average_precision, detection_ap
from engine.models.garments import GarmentHead
from engine.training.garments import GarmentConfig, train_garment_head
from engine.models import get_embedder
from engine.models.heads import HeadEmbedder, load_checkpoint, next_version, save_checkpoint
from engine.pipeline.engine import Engine
from engine.training.data import annotated_images, product_folds, product_regions
from engine.training.triplet import PKSampler, TripletConfig, batch_hard_loss, train_projection

QUICK = TripletConfig(views=1, steps=60)


@pytest.fixture(scope="module")
def catalogue(demo_dir):
    return load_catalogue(demo_dir)


@pytest.fixture(scope="module")
def base():
    return get_embedder("efficientnet-lite0-gem", device="cpu")


@pytest.fixture(scope="module")
def triplet_ckpt(base, catalogue, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heads") / "triplet.pt"
    report = train_projection(base, catalogue, out, QUICK)
    assert report.mode == "cross-domain" and report.regions["clip"] > 0
    return Path(report.checkpoint)


@pytest.fixture(scope="module")
def garment_ckpt(engine, catalogue, tmp_path_factory) -> tuple[GarmentHead, dict]:
    held_out = sorted(catalogue.products)[0]
    out = tmp_path_factory.mktemp("garment") / "garment.pt"
    return train_garment_head(engine, catalogue, out, GarmentConfig(epochs=150),
                              products=set(catalogue.products) - {held_out})


def test_training_regions_come_from_both_domains_and_respect_the_product_split(catalogue):
    keep = set(sorted(catalogue.products)[1:])
    regions = product_regions(catalogue, keep)
    assert {r.domain for r in regions} == {"shop", "clip"}
    assert {r.product_id for r in regions} == keep
    assert all(r.frame_index >= 0 for r in regions if r.domain == "clip")


def test_product_folds_cover_every_evaluable_product_once(catalogue):
    folds = product_folds(catalogue, 2)
    flat = [p for f in folds for p in f]
    assert len(flat) == len(set(flat))
    assert set(flat) == {c.truth for c in catalogue.clips.values() if c.path}


def test_batch_hard_loss_is_zero_for_separated_classes_and_positive_for_mixed_ones():
    import torch

    labels = torch.tensor([0, 0, 1, 1])
    apart = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]]), dim=1)
    mixed = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [0.01, 1.0]]), dim=1)
    assert float(batch_hard_loss(apart, labels, 0.2)[0]) == 0.0
    assert float(batch_hard_loss(mixed, labels, 0.2)[0]) > 1.0


def test_pk_sampler_gives_p_classes_of_k_samples():
    labels = [f"p{i // 3}" for i in range(30)]
    groups = {f"p{i}": "top" if i % 2 else "skirt" for i in range(10)}
    batch = PKSampler(labels, groups, p=4, k=3, seed=0).batch()
    chosen = [labels[i] for i in batch]
    assert len(batch) == 12 and len(set(chosen)) == 4
    assert all(chosen.count(c) == 3 for c in set(chosen))


@pytest.mark.slow
def test_triplet_training_is_seeded_and_reproducible(base, catalogue, triplet_ckpt, tmp_path):
    again = train_projection(base, catalogue, tmp_path / "again.pt", QUICK)
    other = train_projection(base, catalogue, tmp_path / "other.pt", dataclasses.replace(QUICK, seed=1))
    w0 = load_checkpoint(triplet_ckpt, "projection-head")[0]["weight"]
    w1 = load_checkpoint(again.checkpoint, "projection-head")[0]["weight"]
    w2 = load_checkpoint(other.checkpoint, "projection-head")[0]["weight"]
    assert np.array_equal(w0.numpy(), w1.numpy())
    assert not np.array_equal(w0.numpy(), w2.numpy())
    assert not np.allclose(w0.numpy(), np.eye(w0.shape[0]))  # it did train


@pytest.mark.slow
def test_triplet_training_lowers_the_loss(base, catalogue, tmp_path):
    report = train_projection(base, catalogue, tmp_path / "h.pt", dataclasses.replace(QUICK, steps=150))
    assert report.loss_last < report.loss_first


@pytest.mark.slow
def test_self_supervised_and_shop_only_modes_train_without_clip_annotations(base, catalogue, tmp_path):
    ss = train_projection(base, catalogue, tmp_path / "ss.pt", dataclasses.replace(QUICK, mode="self-supervised"))
    assert ss.mode == "self-supervised" and ss.regions["clip"] == 0
    no_clips = dataclasses.replace(catalogue, clips={})
    shop = train_projection(base, no_clips, tmp_path / "shop.pt", QUICK)
    assert shop.mode == "shop-only" and shop.regions["clip"] == 0


@pytest.mark.slow  # its fixture trains a head
def test_head_embedder_projects_and_keys_by_checkpoint(base, triplet_ckpt, tmp_path):
    head = HeadEmbedder(base, triplet_ckpt)
    crops = [np.full((64, 48, 3), v, np.uint8) for v in (30, 200)]
    v = head.embed(crops)
    assert v.shape == (2, head.dim)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert head.key.startswith(base.key + "/head:") and head.key != base.key
    # an identity head changes nothing
    import torch

    ident = save_checkpoint(tmp_path / "id.pt", "projection-head", {"weight": torch.eye(base.dim)},
                            {"base_key": base.key})
    assert np.allclose(HeadEmbedder(base, ident).embed(crops), base.embed(crops), atol=1e-5)


def test_bad_checkpoints_are_refused_clearly(base, tmp_path):
    import torch

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        HeadEmbedder(base, broken)
    with pytest.raises(ModelError, match="not found"):
        HeadEmbedder(base, tmp_path / "missing.pt")
    other = save_checkpoint(tmp_path / "other.pt", "projection-head", {"weight": torch.eye(4)}, {"base_key": "x"})
    with pytest.raises(ModelError, match="was trained on"):
        HeadEmbedder(base, other)
    garment = save_checkpoint(tmp_path / "g.pt", "garment-head", {}, {})
    with pytest.raises(ModelError, match="not a projection-head"):
        HeadEmbedder(base, garment)


def test_checkpoint_versions_count_up(tmp_path):
    first = next_version(tmp_path, "embedding-head")
    assert first.name == "embedding-head-v001.pt"
    first.write_bytes(b"x")
    assert next_version(tmp_path, "embedding-head").name == "embedding-head-v002.pt"


@pytest.mark.slow  # its fixture trains a head
def test_engine_with_a_trained_head_matches_the_demo(demo_dir, catalogue, settings, triplet_ckpt, tmp_path):
    s = settings.with_(embedder="efficientnet-lite0-gem", head=str(triplet_ckpt), index_dir=str(tmp_path / "idx"))
    engine = Engine(s)
    engine.build_index(catalogue, s.paths.index_dir)
    assert engine.index.model_key == engine.embedder.key and "/head:" in engine.index.model_key
    clip = next(c for c in catalogue.clips.values() if c.path)
    assert engine.match(clip.path).top.product_id == clip.truth


def test_average_precision_on_known_cases():
    gt = [np.array([[0, 0, 10, 10]], np.float32), np.array([[0, 0, 10, 10]], np.float32)]
    hit = np.array([[0, 0, 10, 10]], np.float32)
    miss = np.array([[50, 50, 60, 60]], np.float32)
    assert average_precision([(hit, np.array([0.9])), (hit, np.array([0.8]))], gt) == pytest.approx(1.0)
    assert average_precision([(miss, np.array([0.9])), (miss, np.array([0.8]))], gt) == 0.0
    # a confident false positive before the two hits: precision 1/2 then 2/3 at recall 0.5 and 1
    two = (np.concatenate([miss, hit]), np.array([0.95, 0.9]))
    assert average_precision([two, (hit, np.array([0.8]))], gt) == pytest.approx(2 / 3)
    # a duplicate detection of the same box counts once
    dup = (np.concatenate([hit, hit]), np.array([0.9, 0.85]))
    assert average_precision([dup, (miss, np.array([0.1]))], gt) < 1.0


@pytest.mark.slow
def test_garment_head_beats_unlearned_windows_on_held_out_frames(engine, catalogue, garment_ckpt):
    head, info = garment_ckpt
    held_out = sorted(catalogue.products)[0]
    assert held_out not in info["products"]
    assert head.classes[0] == "background" and len(head.classes) > 1
    ap = detection_ap(engine, head, annotated_images(catalogue, {held_out}, shop=False))
    assert ap["images"] > 0
    assert 0.0 <= ap["ap50_garment_head"] <= 1.0
    assert ap["ap50_garment_head"] > ap["ap50_all_windows"]


@pytest.mark.slow  # its fixture trains a head
def test_engine_with_the_garment_head_gives_categories_and_matches(demo_dir, catalogue, settings, garment_ckpt,
                                                                   tmp_path):
    _, info = garment_ckpt
    s = settings.with_(garment_model=info["checkpoint"], category_weight=0.1,
                            index_dir=str(tmp_path / "idx"))
    engine = Engine(s)
    engine.build_index(catalogue, s.paths.index_dir)
    clip = next(c for c in catalogue.clips.values() if c.path)
    result = engine.match(clip.path)
    assert result.top.product_id == clip.truth
    cats = {r.category for f in result.frames for r in f.regions}
    known = set(GarmentHead.load(info["checkpoint"]).classes[1:]) | {merged(r.category) for p in
                                                                    catalogue.products.values() for r in p.regions}
    assert cats and cats <= known  # the head's classes, fused with the k-NN's over the catalogue
    assert all(r.match_box is not None for f in result.frames for r in f.regions)
    import json

    assert json.loads(json.dumps(result.to_dict()))["clip"] == result.clip  # plain floats: the download, --json


@pytest.mark.slow
def test_learned_compare_runs_leave_products_out(demo_dir, settings, tmp_path):
    from engine.eval.crossval import format_learned, learned_compare

    setups = {"baseline": {"embedder": "efficientnet-lite0", "windows": "whole"},
              "all learned": {"garment_model": "{garment}", "head": "{triplet}", "category_weight": 0.1}}
    result = learned_compare(demo_dir, settings, tmp_path / "cv", n_folds=2, named=setups,
                             triplet=QUICK, garment=GarmentConfig(epochs=100))
    assert len(result.folds) == 2
    assert [r.setup for r in result.rows] == list(setups)
    assert all(r.metrics.clips == 3 for r in result.rows)  # every clip scored once, by models that never saw it
    for fold, info in zip(result.folds, result.training):
        assert info["fold"] == fold
    assert "ap50_garment_head" in result.detection
    assert result.categories["boxes"] > 0 and 0.0 <= result.categories["knn_accuracy"] <= 1.0
    text = format_learned(result)
    assert "leave-products-out: 2 folds" in text and "AP@0.5" in text
    from engine.eval.crossval import LearnedComparison

    again = LearnedComparison.load(result.save(tmp_path / "learned.json"))
    assert again.rows == result.rows and again.folds == result.folds


@pytest.mark.slow
def test_cli_trains_both_heads(demo_dir, tmp_path):
    env_run = lambda *a: subprocess.run([sys.executable, "-m", "engine", *a], capture_output=True, text=True,  # noqa
                                        timeout=600, cwd=Path(__file__).resolve().parents[1])
    held_out = sorted(load_catalogue(demo_dir).products)[0]
    r = env_run("train-embedding", "--dataset", str(demo_dir), "--steps", "20", "--views", "1",
                "--frames", "4", "--out", str(tmp_path / "h.pt"))
    assert r.returncode == 0, r.stderr
    assert "checkpoint" in r.stdout and (tmp_path / "h.pt").is_file()
    r = env_run("train-garments", "--dataset", str(demo_dir), "--exclude-products", held_out,
                "--out", str(tmp_path / "g.pt"))
    assert r.returncode == 0, r.stderr
    assert "AP@0.5" in r.stdout
    r = env_run("train-garments", "--dataset", str(demo_dir), "--exclude-products", "nope")
    assert r.returncode == 2 and "not in the catalogue" in r.stderr


@pytest.mark.slow
@pytest.mark.shared
def test_garment_head_on_real_frames_of_a_held_out_product(engine, tmp_path):
    """On the real sample: trained without product 000117, the head finds garments in 000117's frames
    better than the unlearned windows and the person boxes do."""
    from tests.conftest import SHARED

    real = load_catalogue(SHARED)
    head, info = train_garment_head(engine, real, tmp_path / "g.pt", products=set(real.products) - {"000117"})
    assert "000117" not in info["products"]
    ap = detection_ap(engine, head, annotated_images(real, {"000117"}, shop=False))
    assert ap["images"] == 10 and ap["boxes"] == 20
    assert ap["ap50_garment_head"] > max(ap["ap50_all_windows"], ap["ap50_detector_regions"])


@pytest.mark.slow  # its fixture trains a head
def test_a_garment_head_for_another_backbone_is_refused(demo_dir, catalogue, settings, garment_ckpt, tmp_path):
    _, info = garment_ckpt
    s = settings.with_(embedder="efficientnet-lite0", garment_model=info["checkpoint"],
                            index_dir=str(tmp_path / "idx"))
    engine = Engine(s)
    engine.build_index(catalogue, s.paths.index_dir)
    clip = next(c for c in catalogue.clips.values() if c.path)
    with pytest.raises(ModelError, match="garment head was trained on"):
        engine.match(clip.path)
