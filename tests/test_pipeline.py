"""The whole pipeline with the real offline models, on the generated demo."""


import numpy as np
import pytest

from engine.io.catalogue import load_catalogue
from engine.pipeline.catalogue import catalogue_regions
from engine.workspace import index_dir_for
from engine.index.cache import EmbeddingCache
from engine.models import get_embedder
from engine.pipeline.engine import Engine
from engine.pipeline.sources import ClipPath, ClipPaths, DecodedFrames
from engine.io.video import sample_frames


@pytest.fixture(scope="module")
def catalogue(demo_dir):
    return load_catalogue(demo_dir)


@pytest.mark.parametrize("video_id", ["900001", "900002", "900003"])
def test_each_demo_clip_ranks_its_product_first(engine, catalogue, video_id):
    result = engine.match(catalogue.clips[video_id].path)
    assert result.top.product_id == video_id
    assert result.top.votes >= 2 and 0 < result.top.vote_share <= 1
    # the ranking agrees with the per-frame votes it was built from
    votes = {}
    for f in result.frames:
        votes[f.voted_product] = votes.get(f.voted_product, 0) + 1
    assert result.top.votes == max(votes.values()) == votes[video_id]
    assert set(result.top.frames) == {f.frame_index for f in result.frames if f.voted_product == video_id}
    assert {"decode", "detect", "embed", "search", "vote", "total"} <= set(result.timings)


def test_every_frame_gets_regions_even_without_detections(engine, catalogue):
    result = engine.match(catalogue.clips["900001"].path)
    for f in result.frames:
        assert f.regions, "a frame without detections falls back to the whole frame"
        region = f.regions[0]
        assert region.neighbours and region.match_box is not None
        assert region.neighbours[0].similarity >= region.neighbours[-1].similarity


@pytest.mark.slow
def test_fast_mode_agrees_with_the_accurate_mode_on_the_winner(engine, catalogue):
    fast = Engine(engine.settings.with_(windows="refined", refine_top=2), engine.detector, engine.embedder, engine.index)
    for vid in ("900001", "900002"):
        assert fast.match(catalogue.clips[vid].path).top.product_id == vid


@pytest.mark.slow
def test_batched_and_single_frame_paths_give_the_same_ranking(engine, catalogue):
    """Batching frames changes nothing of their embedding, search and votes. Side-by-side detection is off here: it
    detects portrait frames in pairs (one SSD pass on both), so a frame alone can get other boxes by design (the demo's
    presenter: 0.8146 paired, 0.8357 alone); test_side_by_side_finds_the_same_people_on_real_frames checks pairing."""
    engine = Engine(engine.settings.with_(side_by_side=False), engine.detector, engine.embedder, engine.index)
    frames = sample_frames(catalogue.clips["900002"].path, engine.settings.detection.frames)
    batched = engine.match(DecodedFrames(tuple(frames)))
    singles = [engine.match(DecodedFrames((f,))).frames[0] for f in frames]
    assert [f.voted_product for f in batched.frames] == [f.voted_product for f in singles]
    for a, b in zip(batched.frames, singles):
        assert a.vote_similarity == pytest.approx(b.vote_similarity, abs=2e-3)


@pytest.mark.slow
def test_rebuild_embeds_only_what_changed(engine, catalogue, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    catalogue_regions(engine, catalogue, cache=cache)
    assert cache.misses == catalogue.n_images and cache.hits == 0
    cache2 = EmbeddingCache(tmp_path / "cache")
    catalogue_regions(engine, catalogue, cache=cache2)
    assert cache2.hits == catalogue.n_images and cache2.misses == 0


def test_embedder_is_normalised_and_deterministic():
    emb = get_embedder("efficientnet-lite0-gem")
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (120, 80, 3), dtype=np.uint8) for _ in range(3)]
    a, b = emb.embed(crops), emb.embed(crops[:1])
    assert a.shape == (3, emb.dim) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(a[0], b[0], atol=1e-4)


def test_index_lives_where_settings_say(engine, catalogue):
    assert engine.index is not None
    assert str(engine.index.build).startswith(str(index_dir_for(catalogue.root, engine.settings)))
    assert engine.index.meta["n_products"] == len(catalogue.products)


@pytest.mark.slow
def test_batch_mode_gives_the_same_rankings_as_one_at_a_time(engine, demo_dir, tmp_path):
    clips = sorted((demo_dir / "video").glob("*.mp4"))
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"nope")
    batch = dict(engine.match(ClipPaths((*clips, bad))))
    assert type(batch[str(bad)]).__name__ == "VideoError"
    for clip in clips:
        one = engine.match(clip)
        assert [p.product_id for p in batch[str(clip)].ranking] == [p.product_id for p in one.ranking]
        assert [f.voted_product for f in batch[str(clip)].frames] == [f.voted_product for f in one.frames]


@pytest.mark.slow
def test_knn_category_of_matched_regions_is_the_products_category(engine, catalogue):
    result = engine.match(catalogue.clips["900003"].path)
    truth = catalogue.products["900003"].category
    voted = [f for f in result.frames if f.voted_product == "900003"]
    assert voted and all(f.regions[0].category == truth for f in voted)


def test_folder_catalogue_uses_detection_skips_corrupt_images_and_caches_regions(engine, demo_dir, tmp_path):
    import shutil

    root = tmp_path / "folders"
    for pid in ("900001", "900002"):
        shutil.copytree(demo_dir / "image" / pid, root / pid)
    (root / "900002" / "9.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    calls = []

    class CountingDetector:
        name = engine.detector.name

        def detect(self, images, threshold):
            calls.append(len(images))
            return engine.detector.detect(images, threshold)

    counting = Engine(engine.settings, CountingDetector(), engine.embedder)
    cache = EmbeddingCache(tmp_path / "cache")
    vectors, items, problems = catalogue_regions(counting, load_catalogue(root), cache=cache)
    assert len(items) == len(vectors) >= 6 and {it.source for it in items} <= {"detector", "whole-frame"}
    assert len(problems) == 1 and "9.jpg" in problems[0]
    assert calls == [6]  # one batched detection over the readable images of the chunk
    vectors2, items2, _ = catalogue_regions(counting, load_catalogue(root), cache=EmbeddingCache(tmp_path / "cache"))
    assert calls == [6] and items2 == items  # detections come from the cache the second time
    np.testing.assert_allclose(vectors2, vectors)


def test_small_chunks_give_what_one_chunk_gives_and_a_rebuild_decodes_nothing(engine, demo_dir, tmp_path,
                                                                              monkeypatch):
    """With chunks of 2 images: the same vectors, regions and problems, in the same order, as one chunk, for
    annotated, detected and corrupt images alike; a second build from the cache decodes only the image it could
    never read."""
    import shutil

    import engine.pipeline.catalogue as cat_mod

    root = tmp_path / "mixed"
    shutil.copytree(demo_dir, root)
    shutil.copytree(demo_dir / "image" / "900001", root / "image" / "900099")  # not annotated: detected
    broken = next((root / "image" / "900002").glob("*.jpg"))
    broken.write_bytes(b"\xff\xd8\xff\xe0 broken")
    catalogue = load_catalogue(root)
    one = catalogue_regions(engine, catalogue, cache=EmbeddingCache(tmp_path / "one"), chunk=1000)
    two = catalogue_regions(engine, catalogue, cache=EmbeddingCache(tmp_path / "two"), chunk=2)
    assert one[1] == two[1] and one[2] == two[2] and len(two[2]) == 1 and broken.name in two[2][0]
    assert {it.source for it in two[1]} > {"annotation"}  # annotated and detected regions both
    np.testing.assert_allclose(one[0], two[0], atol=1e-5)
    decoded = []
    monkeypatch.setattr(cat_mod, "read_rgb", lambda p, _read=cat_mod.read_rgb: decoded.append(p) or _read(p))
    again = catalogue_regions(engine, catalogue, cache=EmbeddingCache(tmp_path / "two"), chunk=2)
    assert [str(p) for p in decoded] == [str(broken)] and again[1] == two[1]


def test_ranking_names_the_best_matching_catalogue_image(engine, catalogue):
    result = engine.match(catalogue.clips["900002"].path)
    top = result.top
    assert top.best_image in catalogue.products["900002"].images and top.best_box is not None
    best = max((nb for f in result.frames for r in f.regions for nb in r.neighbours if nb.product_id == "900002"),
               key=lambda nb: nb.similarity)
    assert best.image_path == top.best_image and best.similarity == pytest.approx(top.best_similarity, abs=1e-3)


class _FakeDetector:
    """Finds one 'person' box per mosaic tile: the middle third of each 100-px tile, full height."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def detect(self, images, threshold):
        from engine.types import Detections

        out = []
        for im in images:
            self.calls.append(im.shape[:2])
            n = im.shape[1] // 100
            boxes = np.array([[k * 100 + 30, 10, k * 100 + 70, 190] for k in range(n)] + [[95, 0, 110, 50]],
                             np.float32)
            out.append(Detections(boxes, np.full(len(boxes), 0.9, np.float32), ("person",) * len(boxes)))
        return out


def test_side_by_side_detection_pairs_portrait_frames_and_splits_the_boxes():
    from engine.models.detectors import detect_side_by_side, tiles_for

    portrait = [np.zeros((200, 100, 3), np.uint8) for _ in range(5)]
    assert tiles_for(portrait[0]) == 2 and tiles_for(np.zeros((100, 200, 3), np.uint8)) == 1
    fake = _FakeDetector()
    dets = detect_side_by_side(fake, portrait, 0.4)
    assert fake.calls == [(200, 200), (200, 200), (200, 100)]  # two pairs, then the odd frame alone
    assert len(dets) == 5
    for d in dets[:4]:
        assert (d.boxes >= 0).all() and (d.boxes[:, [0, 2]] <= 100).all()  # back in the frame's coordinates
        assert any(np.allclose(b, [30, 10, 70, 190]) for b in d.boxes)
    # the box straddling the seam (centre 102.5) belongs to the right frame, clipped at its left edge
    assert any(np.allclose(b, [0, 0, 10, 50]) for b in dets[1].boxes)


@pytest.mark.slow
@pytest.mark.shared
def test_side_by_side_finds_the_same_people_on_real_frames():
    from torchvision.ops import box_iou
    import torch

    from engine.models import get_detector
    from engine.models.detectors import detect_side_by_side
    from engine.io.video import sample_frames
    from tests.conftest import SHARED

    frames = [f.image for clip in sorted((SHARED / "video").glob("*.mp4")) for f in sample_frames(clip, 10)]
    det = get_detector("ssd-mobilenet-v2-coco")
    single, paired = det.detect(frames, 0.4), detect_side_by_side(det, frames, 0.4)
    for a, b in zip(single, paired):
        assert len(a) > 0 and len(b) > 0
        iou = box_iou(torch.tensor(a.boxes[np.argmax(a.scores)][None]), torch.tensor(b.boxes)).max().item()
        assert iou > 0.6  # measured: median 0.87, lowest 0.77 on the sample's 20 frames


def test_an_engine_without_an_index_raises_even_under_python_O(settings):
    """The guard is a RuntimeError, not an assert, so ``python -O`` keeps it."""
    import subprocess
    import sys
    from pathlib import Path

    with pytest.raises(RuntimeError, match="no index loaded"):
        Engine(settings).examples()
    code = ("from engine.config import Settings\nfrom engine.pipeline.engine import Engine\n"
            "from engine.pipeline.sources import PreparedQuery\n"
            "try:\n    Engine(Settings.from_env()).match(PreparedQuery(None))\nexcept RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert "no index loaded" in out.stdout, out.stderr


def test_matching_a_clip_adds_its_timings_to_a_copy(settings, clip_path, monkeypatch):
    """A MatchResult is frozen: the decoding time and the total go into a new result, the one matched is unchanged;
    ``on_frames`` is given the decoded frames."""
    from engine.pipeline import engine as engine_module
    from engine.types import MatchResult

    matched = MatchResult("c.mp4", (), (), {"detect": 0.25, "embed": 0.5}, {})
    monkeypatch.setattr(Engine, "loaded_index", lambda self: None)
    monkeypatch.setattr(Engine, "examples", lambda self: None)
    monkeypatch.setattr(Engine, "_search", lambda self, query, examples: [])
    monkeypatch.setattr(Engine, "_result", lambda self, name, votes, timings: matched)
    monkeypatch.setattr(engine_module, "query_frames", lambda engine, frames, dets=None, stage=None: None)
    frames: list = []
    result = Engine(settings).match(ClipPath(clip_path(n_frames=6)), on_frames=frames.extend)
    assert matched.timings == {"detect": 0.25, "embed": 0.5}
    assert list(result.timings)[:3] == ["detect", "embed", "decode"] and result.timings["decode"] >= 0
    assert result.timings["total"] == round(0.75 + result.timings["decode"], 4) and len(frames) > 0


def test_hybrid_windows_are_the_exact_region_then_its_pooled_bands(engine, catalogue):
    """The default strategy: row 0 of each region is the region cropped and embedded exactly, the other rows are its
    garment bands pooled from one forward pass (the pooled strategy's own vectors), in garment_windows order."""
    from engine.geometry import garment_windows
    from engine.io.images import crop
    from engine.pipeline.windows import HybridWindows, PooledWindows, QueryRegion, strategy_for

    assert isinstance(strategy_for(engine.settings, engine.embedder, engine.index), HybridWindows)
    frame = sample_frames(catalogue.clips["900001"].path, 2)[0]
    h, w = frame.image.shape[:2]
    regions = [QueryRegion(frame, (w * 0.2, h * 0.1, w * 0.8, h * 0.95), False),
               QueryRegion(frame, (0.0, 0.0, float(w), float(h)), True)]
    plan = HybridWindows(engine.embedder, 8).plan(regions)
    pooled = PooledWindows(engine.embedder).pooled(regions)
    n = len(garment_windows(regions[0].box))
    assert plan.vectors.shape == (2 * n, engine.embedder.dim) and plan.windows[0] == garment_windows(regions[0].box)
    exact = engine.embedder.embed([crop(frame.image, r.box) for r in regions])
    for i in range(2):
        np.testing.assert_allclose(plan.vectors[i * n], exact[i], atol=1e-4)
        np.testing.assert_allclose(plan.vectors[i * n + 1:(i + 1) * n], pooled[i, 1:], atol=1e-4)
        assert not np.allclose(plan.vectors[i * n], pooled[i, 0], atol=1e-2)  # the exact crop is not the pooled one
    assert HybridWindows(engine.embedder, 8).plan([]).vectors.shape == (0, engine.embedder.dim)


def test_the_224x176_members_embed_at_their_own_input_size():
    """The default ensemble's members are the same networks at a 224x176 input: their own keys (so indexes and caches
    never mix the two sizes), the same dimension, and vectors that differ from the 288x224 ones."""
    from engine.models.ensemble import members_of

    assert [m for m, _ in members_of("efficientnet-lite012-gem-224x176")] == [
        "efficientnet-lite0-gem-224x176", "efficientnet-lite1-gem-224x176", "efficientnet-lite2-gem-224x176"]
    small, large = get_embedder("efficientnet-lite0-gem-224x176"), get_embedder("efficientnet-lite0-gem")
    assert small.input_hw == (224, 176) and large.input_hw == (288, 224)
    assert small.key != large.key and small.dim == large.dim
    assert small.preprocess([np.zeros((50, 40, 3), np.uint8)]).shape == (1, 3, 224, 176)
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 255, (300, 200, 3), dtype=np.uint8) for _ in range(2)]
    a, b = small.embed(crops), large.embed(crops)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4)
    assert float((a * b).sum(1).min()) < 0.9999  # a different input size gives a different (if close) vector
