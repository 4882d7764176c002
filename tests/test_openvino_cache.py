"""What makes a fresh process's first match faster must not change a vector: OpenVINO's compiled models kept on disk
(imported by the next process; a damaged, stale or half-written blob is compiled afresh, never trusted), the last
partial batch run padded in the compiled batch shape, and the backbones compiled ahead of the first match."""

from __future__ import annotations

import numpy as np
import pytest

from engine.models import openvino_rt as ovrt
from engine.models import prepare_embedder
from engine.models import runtime as rt
from engine.models.embedders import preprocess

pytest.importorskip("openvino")

NAME = "efficientnet-lite0-gem"


def _preprocess(crops: list[np.ndarray], hw: tuple[int, int] | None = None) -> np.ndarray:
    """The embedder's preprocessing, at its input size unless ``hw`` is given."""
    return preprocess(crops, hw or rt.exported_config(NAME).input_hw)


def _crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (int(rng.integers(60, 500)), int(rng.integers(40, 300)), 3), dtype=np.uint8)
            for _ in range(n)]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """An empty compiled-model cache of its own (the ONNX export is the session's, made once)."""
    monkeypatch.setattr(ovrt, "compiled_cache_dir", lambda: tmp_path / "openvino-compiled")
    return tmp_path


def _backbone(precision: str = "f32") -> ovrt.OpenVinoBackbone:
    path, key = rt.onnx_path(NAME)
    rt.ensure_onnx(NAME)
    return ovrt.OpenVinoBackbone(path, rt.exported_config(NAME).dim, precision, 2, key=key)


def _before(monkeypatch) -> None:
    """The behaviour before the start-up work: no cache on disk, every batch in its own compiled shape."""
    monkeypatch.setattr(ovrt, "CACHE_COMPILED", False)
    monkeypatch.setattr(ovrt, "PAD_ROWS", 0)


def test_vectors_are_those_of_before(home, monkeypatch):
    """12 crops in batches of 8 (the last one padded from 4 to 8), from a model imported from the disk cache,
    against the same crops with no cache and no padding: the same vectors (the rows of a batch are independent)."""
    crops = _crops(12, seed=1)
    emb = rt.build_onnx_embedder(NAME, runtime="openvino", precision="f32")
    emb.backbone = _backbone()  # compiles (8, ...) and keeps it on disk
    emb.embed(crops[:8], 8)
    assert emb.backbone.cache_events == ["compiled"]
    emb.backbone = _backbone()  # a new backbone, as in a fresh process: imported, the 4-crop tail padded to 8
    now = emb.embed(crops, 8)
    assert emb.backbone.cache_events == ["imported"] and list(emb.backbone._compiled) == [(8, 3, *emb.input_hw)]
    _before(monkeypatch)
    emb.backbone = _backbone()
    before = emb.embed(crops, 8)
    assert emb.backbone.cache_events == ["compiled", "compiled"]  # (8, ...) and (4, ...)
    assert _cosines(now, before).min() >= 0.99999
    print(f"largest difference to before: {float(np.abs(now - before).max()):.2e}")


def test_padded_batches_give_the_same_feature_maps(home):
    backbone = _backbone()
    pre = _preprocess
    x = pre(_crops(8, seed=2))
    full = backbone.run(x)
    for n in (1, 3, 7):  # within PAD_ROWS of 8: run in the compiled (8, ...) shape
        np.testing.assert_allclose(backbone.run(x[:n]), full[:n], rtol=0, atol=1e-5)
    assert list(backbone._compiled) == [tuple(x.shape)]
    own = _backbone()
    own.run(x[:3])  # nothing compiled yet: its rows rounded up to a bucket (4)
    assert list(own._compiled) == [(4, *x.shape[1:])]


@pytest.mark.parametrize("n, rows", [(1, 1), (2, 2), (3, 4), (5, 8), (8, 8), (9, 16), (33, 64), (200, 200)])
def test_a_new_batch_size_is_rounded_up_to_a_bucket(n, rows):
    assert ovrt.bucket_rows(n) == rows


def test_the_compiled_shapes_stay_bounded_whatever_the_batch_sizes(home):
    """Batches of every size from 1 to 20 and four region heights: a bounded set of shapes is compiled (buckets)
    and at most MAX_SHAPES are held, each batch's vectors the same as run alone."""
    backbone = _backbone()
    pre = _preprocess
    crops = _crops(20, seed=4)
    x = pre(crops)
    full = backbone.run(x)  # 20 rows: compiled at 32
    seen = set()
    for n in range(1, 21):
        np.testing.assert_allclose(backbone.run(x[:n]), full[:n], rtol=0, atol=1e-5)
        seen |= set(backbone._compiled)
        assert len(backbone._compiled) <= ovrt.MAX_SHAPES
    for h in (288, 384, 480, 576):
        backbone.run(pre(crops[:3], (h, x.shape[3])))
        seen |= set(backbone._compiled)
        assert len(backbone._compiled) <= ovrt.MAX_SHAPES
    assert {s[0] for s in seen} <= set(ovrt.BATCH_BUCKETS)
    assert len(seen) <= 6 + 3  # 20 batch sizes in 6 buckets (1 to 32 rows); 3 more heights at 4 rows

@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty", "sidecar", "no-sidecar"])
def test_a_damaged_blob_is_compiled_afresh(home, damage):
    """OpenVINO imports a blob with damaged weights without a word (measured: wrong feature maps); the digest
    sidecar catches it. Every kind of damage: compiled afresh, the same output, no exception, a sound blob again."""
    pre = _preprocess
    x = pre(_crops(2, seed=3))
    first = _backbone()
    ref = first.run(x)
    blob = first.blob_path(tuple(x.shape))
    sidecar = blob.with_suffix(".sha256")
    assert blob.is_file() and sidecar.is_file()
    data = blob.read_bytes()
    blob.chmod(0o600)
    if damage == "flip":
        blob.write_bytes(data[: len(data) // 2] + bytes(256) + data[len(data) // 2 + 256:])
    elif damage == "truncate":
        blob.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        blob.write_bytes(b"not a blob" * 100)
    elif damage == "empty":
        blob.write_bytes(b"")
    elif damage == "sidecar":
        sidecar.write_text("0" * 64)
    else:
        sidecar.unlink()
    again = _backbone()
    np.testing.assert_allclose(again.run(x), ref, rtol=0, atol=1e-6)
    assert again.cache_events[-1] == "compiled"
    third = _backbone()
    np.testing.assert_allclose(third.run(x), ref, rtol=0, atol=1e-6)
    assert third.cache_events == ["imported"]


def test_an_unwritable_cache_only_costs_a_compile(home, monkeypatch):
    (home / "openvino-compiled").write_text("a file where the folder would be")
    pre = _preprocess
    x = pre(_crops(2, seed=4))
    a, b = _backbone(), _backbone()
    np.testing.assert_allclose(a.run(x), b.run(x), rtol=0, atol=1e-6)
    assert a.cache_events == b.cache_events == ["compiled"]
    (home / "openvino-compiled").unlink()
    a.blob_path(tuple(x.shape)).mkdir(parents=True)  # a folder where the blob would be
    c = _backbone()
    np.testing.assert_allclose(c.run(x), a.run(x), rtol=0, atol=1e-6)
    assert c.cache_events == ["compiled"]


def test_blob_names_follow_the_model_shape_precision_and_cpu(home, monkeypatch):
    """A changed model file, shape, precision, OpenVINO build or CPU cap is a different blob, never a stale one;
    only the newest blob of a model, shape and precision is kept."""
    import os

    backbone = _backbone()
    shape = (8, 3, 288, 224)
    name = backbone.blob_path(shape)
    assert name == _backbone().blob_path(shape)
    assert backbone.blob_path((4, 3, 288, 224)) != name
    if "BF16" in ovrt.cpu_capabilities():
        assert _backbone("bf16").blob_path(shape) != name
    caps = ovrt.cpu_capabilities
    monkeypatch.setattr(ovrt, "cpu_capabilities", lambda: ("FP32",))
    assert backbone.blob_path(shape) != name
    monkeypatch.setattr(ovrt, "cpu_capabilities", caps)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41" if isa != "SSE41" else "AVX2")
    assert backbone.blob_path(shape) != name
    backbone.prepare((2, 3, 288, 224))
    capped = backbone.blob_path((2, 3, 288, 224))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert backbone.blob_path(shape) == name
    backbone.prepare((2, 3, 288, 224))
    old = backbone.blob_path((2, 3, 288, 224))
    st = backbone.path.stat()
    try:
        os.utime(backbone.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as if the export were rewritten
        newer = _backbone()
        assert newer.blob_path((2, 3, 288, 224)) != old
        newer.prepare((2, 3, 288, 224))
        assert newer.cache_events == ["compiled"] and not old.exists()  # the stale blob is dropped
        assert capped.is_file()  # not the one of another CPU cap (a home shared by two machines keeps both)
        assert newer.blob_path((2, 3, 288, 224)).is_file()
    finally:
        os.utime(backbone.path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_the_key_is_checked_without_onnx(home):
    """OpenVINO reads the export's metadata key itself: a model with another key is refused."""
    path, key = rt.onnx_path(NAME)
    rt.ensure_onnx(NAME)
    assert ovrt.onnx_key_of(ovrt.shared_core().read_model(str(path))) == key
    with pytest.raises(Exception, match="not the expected"):
        ovrt.OpenVinoBackbone(path, rt.exported_config(NAME).dim, "f32", key=key + "-other")


def test_prepare_compiles_the_ensembles_vectors_model_for_the_batch(home):
    from engine.models.ensemble import EnsembleEmbedder

    lite0 = rt.build_onnx_embedder(NAME, runtime="openvino", precision="f32")
    other = rt.build_onnx_embedder(NAME, runtime="openvino", precision="f32")
    ens = EnsembleEmbedder("pair", [lite0, other], [1.0, 1.0])
    assert ens.vectors_graph is not None
    prepare_embedder(ens, 8)
    assert list(ens.vectors_graph._compiled) == [(8, 3, *ens.input_hw)]
    before = ens.vectors_graph.cache_events[:]
    ens.embed(_crops(5, seed=5), 8)  # padded into the prepared shape: nothing compiled at the first match
    assert ens.vectors_graph.cache_events == before
    regions = sorted((ovrt.REGION_BATCH, 3, h, ens.input_hw[1]) for h in ovrt.PREPARED_REGION_HEIGHTS)
    for m in (lite0, other):  # each member: only the region batches of the hybrid windows' pooled pass
        assert sorted(m.backbone._compiled) == regions


def test_the_ensembles_one_model_gives_the_member_by_member_vectors(home):
    """The ensemble's vectors from its one OpenVINO model (GeM, L2 and the weights in the graph) are those of its
    members run one by one and pooled in numpy (engine.models.pooling), with unequal weights and members of different widths; a new process
    imports the model from the disk cache and still gives them."""
    from engine.models.ensemble import EnsembleEmbedder

    lite0 = rt.build_onnx_embedder(NAME, runtime="openvino", precision="f32")
    lite1 = rt.build_onnx_embedder("efficientnet-lite1-gem", runtime="openvino", precision="f32")
    crops = _crops(11, seed=7)
    ens = EnsembleEmbedder("pair", [lite0, lite1], [1.0, 3.0])
    fused = ens.embed(crops, 8)
    assert ens.vectors_graph.cache_events == ["compiled"]
    again = EnsembleEmbedder("pair", [lite0, lite1], [1.0, 3.0])
    assert np.array_equal(again.embed(crops, 8), fused) and again.vectors_graph.cache_events == ["imported"]
    again.vectors_graph = None  # member by member, as before
    one_by_one = again.embed(crops, 8)
    assert fused.shape == (11, 640)
    assert _cosines(fused, one_by_one).min() > 0.99999
    assert np.abs(fused - one_by_one).max() < 1e-4
    # the member weights land where they should: Lite1's slice carries 3/4 of the norm squared
    assert np.allclose((fused[:, 320:] ** 2).sum(1), 0.75, atol=1e-5)
    other = EnsembleEmbedder("pair", [lite0, lite1], [1.0, 1.0])
    assert other.vectors_graph.blob_path((8, 3, 288, 224)) != ens.vectors_graph.blob_path((8, 3, 288, 224))


def test_an_ensemble_with_a_torch_member_runs_member_by_member():
    from engine.models import create_embedder
    from engine.models.ensemble import EnsembleEmbedder

    ov_member = rt.build_onnx_embedder(NAME, runtime="openvino", precision="f32")
    torch_member = create_embedder(NAME, device="cpu", runtime="torch")
    ens = EnsembleEmbedder("mixed", [ov_member, torch_member], [1.0, 1.0])
    assert ens.vectors_graph is None
    vecs = ens.embed(_crops(3, seed=2), 8)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_the_cache_keeps_the_most_recently_used_blobs(home, monkeypatch):
    """Shapes vary with the clip (the pooled pass's regions per height): the folder keeps MAX_BLOBS per model file,
    the most recently used (an import counts as a use)."""
    monkeypatch.setattr(ovrt, "MAX_BLOBS", 2)
    monkeypatch.setattr(ovrt, "PAD_ROWS", 0)
    backbone = _backbone()
    shapes = [(n, 3, 64, 64) for n in (1, 2, 3)]
    backbone.prepare(shapes[0])
    backbone.prepare(shapes[1])
    import os
    import time

    os.utime(backbone.blob_path(shapes[1]), (time.time() - 60, time.time() - 60))  # (1, ...) used after (2, ...)
    backbone.prepare(shapes[2])
    kept = sorted(p.name for p in (home / "openvino-compiled").glob("*.blob"))
    assert kept == sorted(backbone.blob_path(s).name for s in (shapes[0], shapes[2]))
    assert len(list((home / "openvino-compiled").glob("*.sha256"))) == 2


def test_region_batches_compile_one_shape_per_height_and_keep_the_feature_maps(home, monkeypatch):
    """The one-pass-per-region batches (hybrid and pooled windows) on OpenVINO hold at most REGION_BATCH regions
    and a shorter one runs padded to it: regions of two clips, in different numbers per height, compile one shape per
    height, and their pooled bands are those of each region run alone, unpadded."""
    emb = rt.build_onnx_embedder(NAME, runtime="openvino", precision="f32")
    tall, wide = (np.full((420, 200, 3), 90, np.uint8), np.full((300, 280, 3), 160, np.uint8))
    rng = np.random.default_rng(3)
    clip_a = [np.clip(tall.astype(int) + rng.integers(-60, 60, tall.shape), 0, 255).astype(np.uint8) for _ in range(5)]
    clip_b = clip_a[:2] + [wide] * 3
    bands = [(0.0, 0.5), (0.4, 1.0)]
    together = np.concatenate([emb.embed_bands(clip_a, bands), emb.embed_bands(clip_b, bands)])
    heights = {s[2] for s in emb.backbone._compiled}
    assert sorted(emb.backbone._compiled) == sorted((ovrt.REGION_BATCH, 3, h, emb.input_hw[1]) for h in heights)
    assert len(heights) == 2 and emb.backbone.cache_events == ["compiled", "compiled"]
    _before(monkeypatch)
    alone = rt.build_onnx_embedder(NAME, runtime="openvino", precision="f32")
    alone.backbone.region_batch = 1  # every region in a batch of its own, nothing padded
    one_by_one = np.concatenate([alone.embed_bands([r], bands) for r in clip_a + clip_b])
    assert _cosines(together, one_by_one).min() > 0.99999

