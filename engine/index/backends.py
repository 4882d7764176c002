"""Approximate-neighbour engines behind one protocol (engine.index.protocol.IndexBackend): Annoy (default), FAISS
and Milvus (options), by name in ``BACKENDS``.

All three index L2-normalised vectors and answer cosine similarities. The index benchmark
(``python -m engine bench-index``) shows why FAISS is offered: at a million regions Annoy cannot
reach recall@10 0.95 within 2 ms, while FAISS IVF can.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np

from engine.errors import IndexFileError
from engine.index.milvus import MilvusBackend
from engine.index.protocol import IndexBackend, IndexSpec

FAISS_EXACT_BELOW = 20_000  # below this many vectors FAISS searches exactly (IndexFlatIP)


class LocalFile:
    """A backend whose index is a file of the build folder: it serves wherever the folder is."""

    @classmethod
    def open(cls, path: Path, dim: int, model_key: str | None = None) -> IndexBackend:
        return cls(path, dim)  # type: ignore[call-arg, return-value]

    @staticmethod
    def moved(path: Path, uri: str | None) -> str:
        return ""


class AnnoyBackend(LocalFile):
    name = "annoy"
    filename = "index.ann"

    def __init__(self, path: Path, dim: int) -> None:
        from annoy import AnnoyIndex

        self._ann = AnnoyIndex(dim, "angular")
        if not self._ann.load(str(path), prefault=False):  # memory-mapped
            raise IndexFileError(f"cannot memory-map {path}")

    @staticmethod
    def build(vectors: np.ndarray, path: Path, spec: IndexSpec, index_dir: Path) -> None:
        from annoy import AnnoyIndex

        ann = AnnoyIndex(int(vectors.shape[1]), "angular")
        ann.set_seed(spec.seed)
        for i, v in enumerate(vectors):
            ann.add_item(i, v.tolist())
        ann.build(spec.n_trees, n_jobs=1)
        ann.save(str(path))
        ann.unload()

    def search(self, vector: np.ndarray, k: int, search_k: int = -1) -> tuple[list[int], list[float]]:
        ids, dists = self._ann.get_nns_by_vector(vector.tolist(), k, search_k=search_k, include_distances=True)
        return ids, [1.0 - d * d / 2.0 for d in dists]  # angular distance is sqrt(2 - 2 cos)


class FaissBackend(LocalFile):
    name = "faiss"
    filename = "index.faiss"

    def __init__(self, path: Path, dim: int) -> None:
        try:
            import faiss
        except ImportError as e:
            raise IndexFileError("this index uses FAISS: pip install -r requirements-bench.txt") from e
        self._index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        if self._index.d != dim:
            raise IndexFileError(f"FAISS index has dimension {self._index.d}, expected {dim}")

    @staticmethod
    def build(vectors: np.ndarray, path: Path, spec: IndexSpec, index_dir: Path) -> None:
        try:
            import faiss
        except ImportError as e:
            raise IndexFileError("the FAISS backend needs faiss-cpu: pip install -r requirements-bench.txt") from e
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = x.shape[1]
        if len(x) < FAISS_EXACT_BELOW:
            index = faiss.IndexFlatIP(dim)
        else:
            nlist = int(4 * np.sqrt(len(x)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(spec.seed)
            index.train(x[rng.choice(len(x), min(len(x), 64 * nlist), replace=False)])
        index.add(x)
        faiss.write_index(index, str(path))

    def search(self, vector: np.ndarray, k: int, search_k: int = -1) -> tuple[list[int], list[float]]:
        if hasattr(self._index, "nprobe"):
            self._index.nprobe = 16 if search_k < 0 else max(1, search_k)
        sims, ids = self._index.search(np.ascontiguousarray(vector[None], dtype=np.float32), k)
        keep = ids[0] >= 0
        return ids[0][keep].tolist(), sims[0][keep].tolist()


BACKENDS: dict[str, type[IndexBackend]] = {"annoy": AnnoyBackend, "faiss": FaissBackend, "milvus": MilvusBackend}
