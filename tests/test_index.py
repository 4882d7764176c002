import json

import numpy as np
import pytest

from engine.errors import IndexFileError
from engine.index.protocol import IndexSpec
from engine.index.store import ProductIndex, current_build, write_index
from engine.types import RegionRef


def _vectors():
    # Four products on four axes, two regions each, slightly perturbed: neighbour order is known.
    rng = np.random.default_rng(0)
    base = np.eye(8, dtype=np.float32)[:4]
    v = np.repeat(base, 2, axis=0) + 0.05 * rng.standard_normal((8, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    items = [RegionRef(f"p{i // 2}", f"img{i}.jpg", (0, 0, 10, 10), "短裙", source="annotation") for i in range(8)]
    products = {f"p{i}": {"name": f"P{i}", "images": [f"img{2 * i}.jpg"]} for i in range(4)}
    return v, items, products


def test_search_finds_known_neighbours_and_exact_rerank(tmp_path):
    v, items, products = _vectors()
    write_index(tmp_path, IndexSpec(v, items, products, "model-a", n_trees=5))
    idx = ProductIndex.load(tmp_path, "model-a")
    query = np.eye(8, dtype=np.float32)[2]
    hits = idx.search(query, 2)
    assert {idx.items[i].product_id for i, _ in hits} == {"p2"}
    assert hits[0][1] > 0.9
    sims = idx.product_similarities(query[None], ["p2", "p0"])
    assert sims["p2"][0].max() > 0.9 > sims["p0"][0].max()


def test_index_built_with_another_model_is_refused(tmp_path):
    v, items, products = _vectors()
    write_index(tmp_path, IndexSpec(v, items, products, "model-a"))
    with pytest.raises(IndexFileError, match="built with 'model-a'"):
        ProductIndex.load(tmp_path, "model-b")


def test_corrupt_index_file_is_detected(tmp_path):
    v, items, products = _vectors()
    build = write_index(tmp_path, IndexSpec(v, items, products, "model-a"))
    data = bytearray((build / "index.ann").read_bytes())
    data[100] ^= 0xFF
    (build / "index.ann").write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="corrupt"):
        ProductIndex.load(tmp_path, "model-a")


def test_corrupt_sidecar_is_detected(tmp_path):
    v, items, products = _vectors()
    build = write_index(tmp_path, IndexSpec(v, items, products, "model-a"))
    (build / "meta.json").write_text("{not json")
    with pytest.raises(IndexFileError, match="unreadable"):
        ProductIndex.load(tmp_path, "model-a")


def test_failed_rebuild_leaves_previous_index_serving(tmp_path):
    v, items, products = _vectors()
    first = write_index(tmp_path, IndexSpec(v, items, products, "model-a"))
    with pytest.raises(IndexFileError):
        write_index(tmp_path, IndexSpec(v[:0], [], products, "model-a"))  # nothing to index
    assert current_build(tmp_path) == first
    assert len(ProductIndex.load(tmp_path, "model-a")) == 8
    assert not [p for p in (tmp_path / "builds").iterdir() if p.name.startswith(".building")]


def test_rebuild_replaces_current_and_records_settings(tmp_path):
    v, items, products = _vectors()
    write_index(tmp_path, IndexSpec(v, items, products, "model-a", n_trees=3))
    second = write_index(tmp_path, IndexSpec(v[:4], items[:4], products, "model-a", n_trees=7))
    assert current_build(tmp_path) == second
    meta = json.loads((second / "meta.json").read_text())
    assert meta["n_trees"] == 7 and meta["dim"] == 8 and meta["n_items"] == 4 and meta["format_version"] == 1


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexFileError, match="build-index"):
        ProductIndex.load(tmp_path / "nowhere")


@pytest.mark.parametrize("n", [8, 25_000])
def test_faiss_backend_behind_the_same_interface(tmp_path, n):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    items = [RegionRef(f"p{i % 4}", "x.jpg", (0, 0, 1, 1), "", source="annotation") for i in range(n)]
    write_index(tmp_path, IndexSpec(v, items, {f"p{i}": {} for i in range(4)}, "m", backend="faiss"))
    idx = ProductIndex.load(tmp_path, "m")
    assert idx.backend == "faiss"
    hits = idx.search(v[5], 3)
    assert hits[0][0] == 5 and hits[0][1] == pytest.approx(1.0, abs=1e-4)
    assert hits[0][1] >= hits[1][1] >= hits[2][1]


def test_unknown_backend_is_refused(tmp_path):
    v, items, products = _vectors()
    with pytest.raises(IndexFileError, match="unknown index backend"):
        write_index(tmp_path, IndexSpec(v, items, products, "m", backend="nope"))


def test_a_milvus_collection_that_cannot_be_dropped_is_logged_not_raised(monkeypatch, caplog):
    """Dropping is best effort (a failed build is being cleaned up): the failure names the collection left behind."""
    from engine.index import milvus

    def unreachable(uri):
        raise IndexFileError(f"cannot reach Milvus at {uri}: connection refused")

    monkeypatch.setattr(milvus, "connect", unreachable)
    with caplog.at_level("WARNING", logger="engine.index.milvus"):
        milvus.drop(milvus.MilvusTarget("http://127.0.0.1:9", "lm_old_build"))
    assert "lm_old_build" in caplog.text and "connection refused" in caplog.text
