"""The product index: an Annoy file plus a JSON sidecar, built offline and loaded by memory map.

Layout of an index folder::

    CURRENT                 name of the build that serves (replaced atomically)
    builds/<name>/index.ann Annoy (angular) over L2-normalised region embeddings (index.faiss with FAISS)
    builds/<name>/meta.json format version, model key, dimension, settings, checksum, items, products

A build is written into a fresh folder and only then made current, so a crash or a kill during a
rebuild leaves the previous index serving.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from engine.config import IndexSettings
from engine.errors import IndexFileError
from engine.index.backends import BACKENDS
from engine.index.corrections import NO_EXAMPLES, CorrectionStore, ExampleSet
from engine.index.milvus import MilvusBackend, drop, read_target, release
from engine.index.milvus_client import ping, resolve_uri
from engine.index.protocol import FilteredBackend, IndexSpec
from engine.io.files import atomic_write, file_digest
from engine.models.domain import l2_normalise
from engine.types import Neighbour, RegionRef

FORMAT_VERSION = 1


def write_index(index_dir: str | Path, spec: IndexSpec) -> Path:
    """Build and atomically publish a new index of ``spec``; returns the build folder.

    With ``spec.query_mean`` (the livestream-domain mean, engine.models.domain) each domain is centred on its own
    mean: the index holds ``normalise(v - catalogue mean)`` and queries are searched as ``normalise(q - query_mean)``.
    Both means are saved with the build, so a loaded index centres its queries by itself. Products may carry a
    "shop" (a filter of the backends that filter, engine.index.protocol.FilteredBackend)."""
    if spec.backend not in BACKENDS:
        raise IndexFileError(f"unknown index backend {spec.backend!r}; choose one of {', '.join(BACKENDS)}")
    if len(spec.vectors) != len(spec.items) or len(spec.items) == 0:
        raise IndexFileError("nothing to index: the catalogue produced no regions")
    index_dir = Path(index_dir)
    (index_dir / "builds").mkdir(parents=True, exist_ok=True)
    with build_lock(index_dir):
        return _write_locked(index_dir, spec)


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index folder (across processes): held by ``write_index`` and by the incremental
    update (engine.index.incremental) while they write and publish."""
    import fcntl

    with open(index_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_locked(index_dir: Path, spec: IndexSpec) -> Path:
    for stale in (index_dir / "builds").glob(".building-*"):  # left by a killed build; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    vectors, items, products = spec.vectors, spec.items, spec.products
    dim = int(vectors.shape[1])
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=index_dir / "builds"))
    try:
        files = ["vectors.npy"]
        if spec.query_mean is not None:
            catalogue_mean = vectors.mean(0).astype(np.float32)
            vectors = l2_normalise(vectors - catalogue_mean)
            np.save(tmp / "catalogue_mean.npy", catalogue_mean, allow_pickle=False)
            np.save(tmp / "query_mean.npy", np.asarray(spec.query_mean, np.float32), allow_pickle=False)
            files += ["catalogue_mean.npy", "query_mean.npy"]
        engine = BACKENDS[spec.backend]
        engine.build(vectors, tmp / engine.filename, spec, index_dir)
        np.save(tmp / "vectors.npy", vectors.astype(np.float32), allow_pickle=False)
        meta = {
            "format_version": FORMAT_VERSION,
            "model_key": spec.model_key,
            "dim": dim,
            "metric": "angular",
            "n_trees": spec.n_trees,
            "seed": spec.seed,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n_items": len(items),
            "n_products": len(products),
            "backend": spec.backend,
            "checksum": {name: file_digest(tmp / name) for name in [engine.filename, *files]},
            "centred": spec.query_mean is not None,
            "items": [[it.product_id, it.image_path, list(it.box), it.category, it.source] for it in items],
            "products": products,
            **(spec.extra or {}),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        name = time.strftime("%Y%m%d-%H%M%S-") + tmp.name[-6:]
        final = index_dir / "builds" / name
        os.replace(tmp, final)
        tmp = final  # from here a failure removes the unpublished build folder
        publish_build(index_dir, name)
    except BaseException:
        _discard(index_dir, tmp)
        raise
    prune_builds(index_dir, keep=2)
    return final


def _discard(index_dir: Path, build: Path) -> None:
    """Remove a build that failed before it was published (and its Milvus collection)."""
    if current_build(index_dir) == build:
        return
    if (build / MilvusBackend.filename).is_file():
        drop(read_target(build / MilvusBackend.filename))
    shutil.rmtree(build, ignore_errors=True)


def publish_build(index_dir: Path, name: str) -> None:
    """Make ``builds/<name>`` the index that loads: the ``CURRENT`` pointer is replaced atomically."""
    with atomic_write(index_dir / "CURRENT", fsync=True) as f:
        f.write(name)


def prune_builds(index_dir: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest builds (never the current one), releasing their Milvus collections."""
    current = (index_dir / "CURRENT").read_text().strip()
    builds = sorted(p for p in (index_dir / "builds").iterdir() if not p.name.startswith("."))
    kept = [b for b in builds[-keep:]] + [index_dir / "builds" / current]
    for old in builds[:-keep]:
        if old.name != current:
            if (old / MilvusBackend.filename).is_file():
                release(old, kept)
            shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class IndexSummary:
    """What an index holds and how it was built: read from its sidecar, without loading the index."""

    build: str
    model_key: str
    dim: int
    n_items: int
    n_products: int
    n_trees: int
    built_at: str
    build_seconds: float | None
    embedder: str
    detector: str
    backend: str = "annoy"
    cache_hits: int = 0
    cache_misses: int = 0
    problems: tuple[str, ...] = ()

    @classmethod
    def from_meta(cls, build: str, meta: dict[str, Any]) -> IndexSummary:
        cache = meta.get("cache") or {}
        return cls(build, str(meta.get("model_key", "")), int(meta.get("dim", 0)), int(meta.get("n_items", 0)),
                   int(meta.get("n_products", 0)), int(meta.get("n_trees", 0)), str(meta.get("built_at", "")),
                   meta.get("build_seconds"), str(meta.get("embedder", "")), str(meta.get("detector", "")),
                   str(meta.get("backend", "annoy")), int(cache.get("hits", 0)), int(cache.get("misses", 0)),
                   tuple(meta.get("problems", ())))


def read_summary(index_dir: str | Path) -> IndexSummary | None:
    """The summary of the index's current build; None when there is none or its sidecar is unreadable."""
    build = current_build(index_dir)
    if build is None:
        return None
    try:
        meta = json.loads((build / "meta.json").read_text(encoding="utf-8"))
        return IndexSummary.from_meta(build.name, meta) if isinstance(meta, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def moved_reason(index_dir: str | Path, ix: IndexSettings) -> str:
    """Why the current build cannot serve under the settings' backend because where it lives moved (a Milvus build
    while LIVEMATCH_MILVUS_URI now names another server or store); "" when it can, or there is no such build."""
    build, backend = current_build(index_dir), BACKENDS.get(ix.index_backend)
    if build is None or backend is None or not (build / backend.filename).is_file():
        return ""
    return backend.moved(build / backend.filename, ix.milvus_uri or None)


def check_reachable(ix: IndexSettings) -> None:
    """IndexUnreachableError now when the settings' backend is a Milvus server that does not answer (before a
    build embeds the catalogue, not after)."""
    if ix.index_backend == MilvusBackend.name:
        ping(resolve_uri(ix.milvus_uri or None))


def indexed_products(index_dir: str | Path) -> set[str]:
    """The products the index's current build holds (from its sidecar; empty when it cannot be read)."""
    build = current_build(index_dir)
    try:
        meta = json.loads((build / "meta.json").read_text(encoding="utf-8")) if build else {}
        return set(meta.get("products") or ())
    except (OSError, ValueError, AttributeError):
        return set()


def current_build(index_dir: str | Path) -> Path | None:
    p = Path(index_dir) / "CURRENT"
    if not p.is_file():
        return None
    build = Path(index_dir) / "builds" / p.read_text().strip()
    return build if build.is_dir() else None


class ProductIndex:
    """A loaded (memory-mapped) index with its sidecar. Safe to share between threads."""

    def __init__(self, build: Path, meta: dict[str, Any]) -> None:
        self.build = build
        self.meta = meta
        self.summary = IndexSummary.from_meta(build.name, meta)
        self.dim = int(meta["dim"])
        self.model_key = str(meta["model_key"])
        self.items = [RegionRef(p, img, tuple(b), c, 0, s) for p, img, b, c, s in meta["items"]]
        self.products: dict[str, dict[str, Any]] = meta["products"]
        backend = BACKENDS.get(str(meta.get("backend", "annoy")))
        if backend is None:
            raise IndexFileError(f"unknown index backend {meta.get('backend')!r}: rebuild the index")
        self._ann = backend.open(build / backend.filename, self.dim, self.model_key)
        self.backend = backend.name
        self.vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
        self.query_mean = (np.load(build / "query_mean.npy", allow_pickle=False) if meta.get("centred") else None)
        self.deleted = frozenset(int(i) for i in meta.get("deleted", ()))  # regions an incremental update removed
        by_product: dict[str, list[int]] = {pid: [] for pid in self.products}
        for i, it in enumerate(self.items):  # one pass: O(items), not O(items x products)
            if i in self.deleted:
                continue
            by_product.setdefault(it.product_id, []).append(i)
        self._by_product = {pid: np.array(ids, int) for pid, ids in by_product.items()}
        self._filtered: dict[tuple[str, str], np.ndarray] = {}  # (shop, category) -> the item ids it keeps
        self._lock = threading.Lock()
        self.corrections = CorrectionStore(build.parent.parent / "corrections")  # beside builds/: kept by rebuilds
        self.examples: ExampleSet = NO_EXAMPLES
        self._examples_signature: str | None = None
        self.refresh_examples()

    def refresh_examples(self) -> ExampleSet:
        """The livestream examples (corrections) in force, reloaded when they changed on disk; the set is replaced
        as a whole, so a caller that holds one sees a consistent set."""
        with self._lock:
            signature = self.corrections.signature()
            if signature != self._examples_signature:
                self.examples = self.corrections.load(self.model_key, self.products, self.dim, self.prepare)
                self._examples_signature = signature
            return self.examples

    def __len__(self) -> int:
        return len(self.items) - len(self.deleted)

    @classmethod
    def load(cls, index_dir: str | Path, model_key: str | None = None, verify: bool = True) -> ProductIndex:
        """Load the current build; refuse a corrupt one or one built with another model."""
        build = current_build(index_dir)
        if build is None:
            raise IndexFileError(f"no index in {index_dir}: build one first (python -m engine build-index)")
        try:
            meta = json.loads((build / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexFileError(f"the index sidecar is unreadable ({type(e).__name__}): rebuild the index") from e
        if meta.get("format_version") != FORMAT_VERSION:
            raise IndexFileError(f"index format {meta.get('format_version')} is not {FORMAT_VERSION}: rebuild the index")
        if model_key is not None and meta.get("model_key") != model_key:
            raise IndexFileError(
                f"the index was built with {meta.get('model_key')!r}, not {model_key!r}: rebuild it with this model"
            )
        if verify:
            for fname, digest in meta.get("checksum", {}).items():
                f = build / fname
                if not f.is_file() or file_digest(f) != digest:
                    raise IndexFileError(f"the index file {fname} is corrupt (checksum mismatch): rebuild the index")
        try:
            return cls(build, meta)
        except (KeyError, TypeError, ValueError) as e:
            raise IndexFileError(f"the index sidecar is malformed ({e}): rebuild the index") from e

    def search(self, vector: np.ndarray, k: int, search_k: int = -1, shop: str | None = None,
               category: str | None = None) -> list[tuple[int, float]]:
        """k nearest items as (item id, cosine similarity), best first; only one shop's products and/or one
        category's regions when given (a Milvus filter; an exact search over those regions with other backends)."""
        if vector.shape[-1] != self.dim:
            raise IndexFileError(f"query dimension {vector.shape[-1]} does not match the index ({self.dim})")
        if shop or category:
            if not isinstance(self._ann, FilteredBackend):
                return self._exact_filtered(self.prepare(vector), k, shop, category)
            ids, sims = self._ann.search_filtered(self.prepare(vector), k, search_k, shop, category)
        else:
            ids, sims = self._ann.search(self.prepare(vector), k, search_k)
        n = len(self.items)  # rows an unpublished update added, or one just removed, are not this build's
        return [(int(i), float(s)) for i, s in zip(ids, sims) if 0 <= i < n and int(i) not in self.deleted]

    def _exact_filtered(self, vector: np.ndarray, k: int, shop: str | None, category: str | None) -> list[tuple[int, float]]:
        key = (shop or "", category or "")
        ids = self._filtered.get(key)
        if ids is None:  # once per filter: a clip searches it hundreds of times
            ids = np.array([i for i, it in enumerate(self.items) if i not in self.deleted
                            and (not shop or str((self.products.get(it.product_id) or {}).get("shop") or "") == shop)
                            and (not category or it.category == category)], int)
            self._filtered[key] = ids
        if len(ids) == 0:
            return []
        sims = np.asarray(self.vectors[ids]) @ np.asarray(vector, np.float32)
        top = np.argsort(-sims)[:k]
        return [(int(ids[j]), float(sims[j])) for j in top]

    def product_similarities(
        self, vectors: np.ndarray, product_ids: list[str]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Exact re-ranking: for each candidate product, the cosine matrix (queries x its regions)
        and the ids of those regions."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        vectors = self.prepare(vectors)
        for pid in product_ids:
            idx = self._by_product.get(pid)
            if idx is None or len(idx) == 0:
                continue
            out[pid] = (vectors @ np.asarray(self.vectors[idx]).T, idx)
        return out

    def product_items(self, product_id: str) -> np.ndarray:
        """The item ids of a product's catalogue regions (empty when it has none)."""
        return self._by_product.get(product_id, np.zeros(0, int))

    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        """Query vectors as the index compares them: centred on the livestream mean when the index is centred."""
        return vectors if self.query_mean is None else l2_normalise(np.asarray(vectors, np.float32) - self.query_mean)

    def neighbour(self, item_id: int, similarity: float) -> Neighbour:
        return Neighbour(self.items[item_id], similarity)
