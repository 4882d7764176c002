"""Index engines at scale on clustered synthetic vectors: Annoy against exact search, FAISS, hnswlib and Milvus Lite.

Vectors are a mixture of Gaussians on the unit sphere (product embeddings cluster by product and
category), L2-normalised; neighbours are by cosine. Recall@10 is measured against exact search.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from dataclasses import asdict
from typing import Callable

import numpy as np

from engine.eval.bench_common import IndexBench, bench_exact_filtered, exact_topk, latency
from engine.eval.bench_milvus import bench_milvus


def clustered_vectors(n: int, dim: int, per_product: int = 10, n_categories: int = 50, seed: int = 0,
                      product_spread: float = 0.8, region_spread: float = 0.35) -> np.ndarray:
    """n unit vectors shaped like a catalogue: categories, products around them, regions around products.

    A hierarchical mixture of Gaussians: n / per_product product centres scattered around n_categories
    category centres, and each product's regions scattered around its centre (spreads are the noise
    norms relative to the unit centres).
    """
    rng = np.random.default_rng(seed)

    def around(centres: np.ndarray, count: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
        owner = rng.integers(0, len(centres), count)
        x = centres[owner] + spread * rng.standard_normal((count, dim)).astype(np.float32) / np.sqrt(dim)
        return x / np.linalg.norm(x, axis=1, keepdims=True), owner

    categories, _ = around(rng.standard_normal((n_categories, dim)).astype(np.float32) * np.sqrt(dim), n_categories, 0)
    products, _ = around(categories, max(1, n // per_product), product_spread)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 200_000):
        out[s : s + 200_000] = around(products, min(200_000, n - s), region_spread)[0]
    return out


def bench_exact(base, queries, truth) -> IndexBench:
    t0 = time.perf_counter()
    b = np.ascontiguousarray(base)
    build = time.perf_counter() - t0
    p50, p99, rec = latency(lambda q: np.argpartition(-(b @ q), 10)[:10], queries, truth)
    fp50, fp99 = bench_exact_filtered(base, queries)
    return IndexBench("exact (numpy)", len(base), "matmul", build, base.nbytes / 1e6, p50, p99, rec, fp50, fp99, 1.0)


def bench_annoy(base, queries, truth, n_trees: int, search_ks: list[int]) -> list[IndexBench]:
    from annoy import AnnoyIndex

    ann = AnnoyIndex(base.shape[1], "angular")
    t0 = time.perf_counter()
    for i, v in enumerate(base):
        ann.add_item(i, v)
    ann.build(n_trees, n_jobs=-1)
    build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "a.ann")
        ann.save(path)
        size = os.path.getsize(path) / 1e6
        out = []
        for sk in search_ks:
            p50, p99, rec = latency(lambda q: ann.get_nns_by_vector(q, 10, search_k=sk), queries, truth)
            out.append(IndexBench("annoy", len(base), f"n_trees={n_trees} search_k={sk}", build, size, p50, p99, rec))
        ann.unload()
    return out


def bench_hnsw(base, queries, truth, m: int = 16, ef_construction: int = 100, efs: tuple[int, ...] = (32, 64, 128)):
    import hnswlib

    idx = hnswlib.Index(space="cosine", dim=base.shape[1])
    t0 = time.perf_counter()
    idx.init_index(max_elements=len(base), ef_construction=ef_construction, M=m)
    idx.add_items(base, num_threads=os.cpu_count() or 1)
    build = time.perf_counter() - t0
    size = (len(base) * (base.shape[1] * 4 + m * 2 * 4 + 8)) / 1e6
    out = []
    for ef in efs:
        idx.set_ef(ef)
        idx.set_num_threads(1)
        p50, p99, rec = latency(lambda q: idx.knn_query(q, k=10)[0][0], queries, truth)
        out.append(IndexBench("hnswlib", len(base), f"M={m} efC={ef_construction} ef={ef}", build, size, p50, p99, rec))
    return out


def bench_faiss(base, queries, truth, nprobes: tuple[int, ...] = (8, 12, 16, 24, 32)) -> list[IndexBench]:
    import faiss

    out = []
    flat = faiss.IndexFlatIP(base.shape[1])
    t0 = time.perf_counter()
    flat.add(base)
    build = time.perf_counter() - t0
    p50, p99, rec = latency(lambda q: flat.search(q[None], 10)[1][0], queries, truth)
    out.append(IndexBench("faiss", len(base), "IndexFlatIP (exact)", build, base.nbytes / 1e6, p50, p99, rec))
    nlist = int(4 * np.sqrt(len(base)))
    quant = faiss.IndexFlatIP(base.shape[1])
    ivf = faiss.IndexIVFFlat(quant, base.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    ivf.train(base[np.random.default_rng(0).choice(len(base), min(len(base), 50 * nlist), replace=False)])
    ivf.add(base)
    build = time.perf_counter() - t0
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        p50, p99, rec = latency(lambda q: ivf.search(q[None], 10)[1][0], queries, truth)
        out.append(IndexBench("faiss", len(base), f"IVFFlat nlist={nlist} nprobe={nprobe}", build,
                              base.nbytes / 1e6, p50, p99, rec))
    return out


def run(sizes: list[int], dim: int = 320, n_queries: int = 200, n_trees: int = 50,
        engines: tuple[str, ...] = ("exact", "annoy", "faiss", "hnswlib"),
        print_row: Callable[[IndexBench], None] = print) -> list[IndexBench]:
    rows: list[IndexBench] = []
    for n in sizes:
        base = clustered_vectors(n, dim, seed=0)
        rng = np.random.default_rng(1)
        queries = base[rng.choice(n, n_queries, replace=False)] + 0.02 * rng.standard_normal((n_queries, dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = exact_topk(base, queries, 10)
        for name in engines:
            try:
                if name == "exact":
                    got = [bench_exact(base, queries, truth)]
                elif name == "annoy":
                    got = bench_annoy(base, queries, truth, n_trees, [n_trees * 10, n_trees * 40, n_trees * 160])
                elif name == "faiss":
                    got = bench_faiss(base, queries, truth)
                elif name == "milvus":
                    got = bench_milvus(base, queries, truth)
                else:
                    got = bench_hnsw(base, queries, truth)
            except ImportError:
                print(f"({name} is not installed: pip install -r requirements-bench.txt"
                      f"{' -r requirements-scale.txt' if name == 'milvus' else ''})")
                continue
            for r in got:
                print_row(r)
            rows.extend(got)
            gc.collect()
    return rows


def format_row(r: IndexBench) -> str:
    return (f"{r.engine:<14} {r.n:>9,} {r.params:<34} build {r.build_s:8.1f} s  size {r.size_mb:8.1f} MB  "
            f"p50 {r.p50_ms:7.3f} ms  p99 {r.p99_ms:7.3f} ms  recall@10 {r.recall10:.3f}"
            + (f"  one shop: p50 {r.filtered_p50_ms:7.3f} ms  p99 {r.filtered_p99_ms:7.3f} ms  recall@10 "
               f"{r.filtered_recall10:.3f}" if r.filtered_p50_ms is not None else ""))


def as_dicts(rows: list[IndexBench]) -> list[dict]:
    return [asdict(r) for r in rows]
