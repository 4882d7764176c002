"""What every index backend is (``IndexBackend``, a ``runtime_checkable`` Protocol), what one that filters by shop
and category adds (``FilteredBackend``), and what a build is made of (``IndexSpec``).

Annoy and FAISS (engine.index.backends) and Milvus (engine.index.milvus) implement it; engine.index.store builds,
opens and searches them only through it, and asks ``isinstance(backend, FilteredBackend)`` rather than a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from engine.types import RegionRef


@dataclass(frozen=True)
class IndexSpec:
    """What a build is made of: the region vectors (raw embeddings), their regions and products, and how to index
    them. ``query_mean``: the livestream-domain mean (engine.models.domain), when the index is centred; ``uri``: the
    Milvus server or Milvus Lite file of the milvus backend (None: the configured one); ``extra``: more sidecar
    fields (the catalogue, the models, the build's timing)."""

    vectors: np.ndarray
    items: list[RegionRef]
    products: dict[str, dict[str, Any]]  # product -> name, category, shop, images
    model_key: str
    n_trees: int = 50
    seed: int = 0
    extra: dict[str, Any] | None = None
    backend: str = "annoy"
    query_mean: np.ndarray | None = None
    uri: str | None = None


@runtime_checkable
class IndexBackend(Protocol):
    """Approximate nearest neighbours over L2-normalised vectors, answered as cosine similarities."""

    name: str  # the sidecar's "backend"
    filename: str  # the file a build folder holds for it

    @classmethod
    def open(cls, path: Path, dim: int, model_key: str | None = None) -> IndexBackend:
        """The index a build wrote at ``path``; an IndexFileError when it is missing, corrupt or another model's."""
        ...

    @staticmethod
    def build(vectors: np.ndarray, path: Path, spec: IndexSpec, index_dir: Path) -> None:
        """Index ``vectors`` (``spec.vectors`` as the index holds them: centred when it is) and record it at ``path``
        inside a build folder of ``index_dir``."""
        ...

    def search(self, vector: np.ndarray, k: int, search_k: int = -1) -> tuple[list[int], list[float]]:
        """The ``k`` nearest item ids and their cosine similarities, best first (``search_k``: the effort; -1 the
        backend's default)."""
        ...

    @staticmethod
    def moved(path: Path, uri: str | None) -> str:
        """Why the build recorded at ``path`` cannot serve from the configured ``uri`` ("" when it can; a local
        file always can)."""
        ...


@runtime_checkable
class FilteredBackend(IndexBackend, Protocol):
    """A backend that filters by shop and category itself (Milvus); the others are searched exactly over the
    regions a filter keeps (engine.index.store.ProductIndex.search)."""

    def search_filtered(self, vector: np.ndarray, k: int, search_k: int = -1, shop: str | None = None,
                        category: str | None = None) -> tuple[list[int], list[float]]:
        ...
