"""Catalogue embedding on Ray: the images are split in chunks and embedded by a pool of Ray actors, each holding
one loaded detector and embedder (a GPU each where the cluster has them).

The distributor knows nothing of the model: it receives ``build``, a function that each worker calls once to
get its embedding function ``embed(jobs, cache, problems)`` (``engine.pipeline.engine.chunk_embedder`` bound to
the settings, which is what ``Engine.build_index`` passes), and hands it chunks of (product, image path) jobs.

Workers read and write the same embedding cache as the plain build (engine.index.cache, under
``$LIVEMATCH_HOME/embeddings``; on a cluster that folder must be shared storage), so a rerun embeds only what
changed. An actor that dies is restarted and its chunk retried (``max_restarts``, ``max_task_retries``); if the
build still fails nothing is published and the previous index keeps serving (engine.index.store's atomic publish).
ray is imported only here, only when ``build-index --ray`` is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.errors import EngineError
from engine.index.cache import EmbeddingCache
from engine.io.catalogue import Catalogue
from engine.types import RegionRef

Progress = Callable[[str, float], None]
EmbedChunk = Callable[[list, EmbeddingCache, list[str]], list[tuple]]  # (jobs, cache, problems) -> embedded images
CHUNK = 32  # images per task: the plain build's chunk, so batches (and embeddings) are the same
RETRIES = 3
CHUNK_TIMEOUT_S = 600.0  # no chunk finished for this long: the build stops with an error instead of waiting on


@dataclass(frozen=True)
class ChunkResult:
    """What one worker returns for a chunk of images."""

    regions: list[tuple[str, str, list, list, str, np.ndarray]]  # product, image, boxes, categories, source, vectors
    problems: list[str]
    hits: int
    misses: int


class EmbedWorker:
    """A Ray actor: one embedding function (detector and embedder loaded once) embedding chunks through the shared
    cache."""

    def __init__(self, build: Callable[[], EmbedChunk], cache_root: str, threads: int) -> None:
        os.environ["LIVEMATCH_CPU_THREADS"] = str(max(1, threads))
        try:
            import torch

            torch.set_num_threads(max(1, threads))
        except ImportError:
            pass
        self.embed_chunk = build()
        self.cache = EmbeddingCache(cache_root)

    def embed(self, jobs: list) -> ChunkResult:
        problems: list[str] = []
        hits, misses = self.cache.hits, self.cache.misses
        done = self.embed_chunk(jobs, self.cache, problems)
        return ChunkResult([(p.product_id, img, list(b), list(c), src, v) for p, img, b, c, src, v in done],
                           problems, self.cache.hits - hits, self.cache.misses - misses)


def ray_module() -> Any:
    """The ``ray`` module, or an EngineError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise EngineError("build-index --ray needs ray: pip install -r requirements-scale.txt") from e
    return ray


def start_ray(address: str = "local", num_cpus: int | None = None) -> bool:
    """Connect to the cluster at ``address``, or start a local Ray with this machine's cores ("local").
    Returns True when this call started or connected (the caller then shuts it down)."""
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a FutureWarning of Ray 2.5x
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = ray_module()
    if ray.is_initialized():
        return False
    repo = str(Path(__file__).resolve().parents[2])
    env = {"PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)}
    if address != "local":
        _check_reachable(address)
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env})
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError from a bad address
        raise EngineError(f"cannot start or reach Ray at {address}: {str(e).splitlines()[0] if str(e) else e}") from e
    return True


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds on a dead ``host:port`` (``ray.init`` itself retries for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms are left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise EngineError(f"cannot reach Ray at {address}: {e.strerror or e}") from e


def ray_catalogue_regions(build: Callable[[], EmbedChunk], catalogue: Catalogue, address: str, workers: int = 0,
                          progress: Progress = lambda s, f: None, *,
                          cache: EmbeddingCache) -> tuple[np.ndarray, list[RegionRef], list[str]]:
    """Like engine.pipeline.catalogue.catalogue_regions, with the chunks embedded on Ray (same order, same items).
    ``build`` is called once in each worker and returns its embedding function (see the module's docstring); it
    must be picklable, as a module-level function or a ``functools.partial`` of one is."""
    ray = ray_module()
    started = start_ray(address)
    try:
        results = _run(ray, build, catalogue, workers, progress, cache)
    finally:
        if started:
            ray.shutdown()
    vectors, items, problems = [], [], []
    for r in results:
        problems += r.problems
        cache.hits, cache.misses = cache.hits + r.hits, cache.misses + r.misses
        for pid, img, boxes, cats, source, vecs in r.regions:
            vectors.append(vecs)
            items.extend(RegionRef(pid, img, tuple(b), c, 0, source) for b, c in zip(boxes, cats))
    dim = int(vectors[0].shape[1]) if vectors else 0
    return (np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)), items, problems


def _run(ray: Any, build: Callable[[], EmbedChunk], catalogue: Catalogue, workers: int, progress: Progress,
         cache: EmbeddingCache) -> list[ChunkResult]:
    jobs = [(p, img) for p in catalogue.products.values() for img in p.images]
    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    resources = ray.cluster_resources()
    cpus = float(resources.get("CPU", 1))
    n = max(1, min(workers or min(8, int(cpus)), len(chunks) or 1))
    threads = max(1, int(cpus) // n)
    gpus = min(1.0, resources.get("GPU", 0) / n)
    # more workers than CPUs share them (fractional CPUs): whole CPUs each would leave some never placed
    actor = ray.remote(num_cpus=min(1.0, cpus / n), num_gpus=gpus,
                       max_restarts=RETRIES, max_task_retries=RETRIES)(EmbedWorker)
    pool = [actor.remote(build, str(cache.root), threads) for _ in range(n)]
    try:
        pending = {pool[i % n].embed.remote(c): i for i, c in enumerate(chunks)}
        results: list[ChunkResult | None] = [None] * len(chunks)
        remaining = list(pending)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1, timeout=CHUNK_TIMEOUT_S)
            if not ready:
                raise EngineError(f"no Ray worker finished a chunk of {CHUNK} images in {CHUNK_TIMEOUT_S:.0f} s: "
                                  "is the cluster short of CPUs for the workers asked for?")
            results[pending[ready[0]]] = _get(ray, ready[0])
            progress("embed", (len(chunks) - len(remaining)) / max(1, len(chunks)))
    finally:
        for a in pool:
            ray.kill(a)
    return [r for r in results if r is not None]


def _get(ray: Any, ref: Any) -> ChunkResult:
    try:
        return ray.get(ref)
    except Exception as e:  # RayActorError after the retries, or the worker's own exception
        raise EngineError(f"a Ray worker failed while embedding the catalogue: {str(e).splitlines()[0]}") from e
