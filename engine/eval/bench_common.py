"""What the index benchmarks share (engine.eval.bench_index, engine.eval.bench_milvus): the result row, the exact
top-k that recall is measured against, the latency and recall of a search, and the split of the rows into shops
that the filtered searches use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class IndexBench:
    engine: str
    n: int
    params: str
    build_s: float
    size_mb: float
    p50_ms: float
    p99_ms: float
    recall10: float
    filtered_p50_ms: float | None = None  # a search restricted to one shop (engine.eval.bench_milvus)
    filtered_p99_ms: float | None = None
    filtered_recall10: float | None = None


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The row ids of ``base`` with the k largest inner products with each query, best first."""
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 256):
        sims = queries[s : s + 256] @ base.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(sims, part, 1).argsort(axis=1)[:, ::-1]
        out[s : s + 256] = np.take_along_axis(part, order, 1)
    return out


def latency(query: Callable[[np.ndarray], np.ndarray], queries: np.ndarray,
            truth: np.ndarray) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, recall@10) of ``query`` over ``queries``, against each query's exact top-10 ``truth``."""
    times, hits = [], 0
    for q, t in zip(queries, truth):
        t0 = time.perf_counter()
        ids = query(q)
        times.append((time.perf_counter() - t0) * 1000)
        hits += len(set(np.asarray(ids)[:10].tolist()) & set(t.tolist()))
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), hits / (10 * len(queries))


N_SHOPS = 10
PER_PRODUCT = 10  # rows are given to shops in runs of 10: row i is in shop (i // 10) % 10, a tenth of the rows


def shops_of(n: int) -> np.ndarray:
    """The shop of each of ``n`` rows."""
    return (np.arange(n) // PER_PRODUCT) % N_SHOPS


def filtered_truth(base: np.ndarray, queries: np.ndarray, shop: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of one shop and the exact top-10 among them (row ids of ``base``)."""
    rows = np.flatnonzero(shops_of(len(base)) == shop)
    return rows, rows[exact_topk(base[rows], queries, 10)]


def bench_exact_filtered(base: np.ndarray, queries: np.ndarray, shop: int = 3) -> tuple[float, float]:
    """Exact search over one shop's rows (numpy, rows selected up front): the reference for filtered latency."""
    rows, truth = filtered_truth(base, queries, shop)
    sub = np.ascontiguousarray(base[rows])
    p50, p99, _ = latency(lambda q: rows[np.argpartition(-(sub @ q), 10)[:10]], queries, truth)
    return p50, p99
