"""Milvus (Lite, embedded) in the index benchmark: build, latency and recall@10 like the other engines, plus the
latency and recall of a search filtered to one shop (a tenth of the products), which the others cannot do natively.

The collection goes into a temporary Milvus Lite file unless ``LIVEMATCH_MILVUS_URI`` names a server.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from engine.config import milvus_uri_from_env
from engine.eval.bench_common import PER_PRODUCT, IndexBench, filtered_truth, latency, shops_of


def bench_milvus(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, shop: int = 3) -> list[IndexBench]:
    import pymilvus  # noqa: F401 - an ImportError here is reported as "not installed"

    from engine.index import milvus

    with tempfile.TemporaryDirectory() as d:
        uri = milvus_uri_from_env() or str(Path(d) / "bench.db")
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
        p50, p99, rec = latency(lambda q: search(q, 10)[0], queries, truth)
        _, ftruth = filtered_truth(base, queries, shop)
        expr = milvus.shop_filter(f"s{shop}")
        fp50, fp99, frec = latency(lambda q: search(q, 10, expr=expr)[0], queries, ftruth)
        milvus.drop(target)
    return [IndexBench("milvus-lite", len(base), "AUTOINDEX (HNSW) IP", build, base.nbytes / 1e6, p50, p99, rec,
                       fp50, fp99, frec)]


class _Loaded:
    """Enough of a MilvusBackend for its search method: a client and a target."""

    def __init__(self, client, target) -> None:
        self._client, self.target = client, target
