"""Milvus (Lite, embedded) in the index benchmark: build, latency and recall@10 like the other engines, plus the
latency and recall of a search filtered to one shop (a tenth of the products), which the others cannot do natively.

The collection goes into a temporary Milvus Lite file unless ``LIVEMATCH_MILVUS_URI`` names a server.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.eval.bench_index import IndexBench, _latency, exact_topk

N_SHOPS = 10
PER_PRODUCT = 10  # rows are given to shops in runs of 10: row i is in shop (i // 10) % 10, a tenth of the rows


def shops_of(n: int) -> np.ndarray:
    return (np.arange(n) // PER_PRODUCT) % N_SHOPS


def filtered_truth(base: np.ndarray, queries: np.ndarray, shop: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of one shop and the exact top-10 among them (row ids of ``base``)."""
    rows = np.flatnonzero(shops_of(len(base)) == shop)
    return rows, rows[exact_topk(base[rows], queries, 10)]


def bench_exact_filtered(base: np.ndarray, queries: np.ndarray, shop: int = 3) -> tuple[float, float]:
    """Exact search over one shop's rows (numpy, rows selected up front): the reference for filtered latency."""
    rows, truth = filtered_truth(base, queries, shop)
    sub = np.ascontiguousarray(base[rows])
    p50, p99, _ = _latency(lambda q: rows[np.argpartition(-(sub @ q), 10)[:10]], queries, truth)
    return p50, p99


def bench_milvus(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, shop: int = 3) -> list[IndexBench]:
    import pymilvus  # noqa: F401 - an ImportError here is reported as "not installed"

    from engine.index import milvus

    with tempfile.TemporaryDirectory() as d:
        uri = os.environ.get("LIVEMATCH_MILVUS_URI") or str(Path(d) / "bench.db")
        target = milvus.MilvusTarget(uri, f"lm_bench_{len(base)}")
        t0 = time.perf_counter()
        client = milvus.create_collection(target, base.shape[1], "bench")
        shops = shops_of(len(base))
        for s in range(0, len(base), milvus.BATCH):
            client.insert(target.collection, [
                {"id": i, "vector": base[i].tolist(), "product": str(i // PER_PRODUCT), "image": "", "box": [],
                 "category": "", "shop": f"s{shops[i]}"} for i in range(s, min(len(base), s + milvus.BATCH))])
        client.flush(target.collection)
        client.load_collection(target.collection)
        search = milvus.MilvusBackend.search.__get__(_Loaded(client, target))
        search(queries[0], 10)  # the first search builds what is left to build
        build = time.perf_counter() - t0
        p50, p99, rec = _latency(lambda q: search(q, 10)[0], queries, truth)
        _, ftruth = filtered_truth(base, queries, shop)
        expr = milvus.shop_filter(f"s{shop}")
        fp50, fp99, frec = _latency(lambda q: search(q, 10, expr=expr)[0], queries, ftruth)
        milvus.drop(target)
    return [IndexBench("milvus-lite", len(base), "AUTOINDEX (HNSW) IP", build, base.nbytes / 1e6, p50, p99, rec,
                       fp50, fp99, frec)]


class _Loaded:
    """Enough of a MilvusBackend for its search method: a client and a target."""

    def __init__(self, client, target) -> None:
        self._client, self.target = client, target
