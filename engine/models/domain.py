"""Domain-aware similarity: centre each domain's vectors on its own mean, then re-normalise.

Shop photos and livestream frames differ in ways that have nothing to do with the product (light, background,
pose, compression), so each domain's vectors share a common component, and a few catalogue items attract most
queries ("hubness"). Similarity is measured after removing that component on each side:

- catalogue side: the mean of the catalogue's own region vectors, computed when the index is built (the index
  stores ``normalise(v - catalogue_mean)``, see engine.index.store);
- livestream side: a fixed livestream-domain mean, ``normalise(q - livestream_mean)``: the coordinate-wise median
  of the detected person regions of a set of livestream clips (no annotation used), computed once by
  ``python -m engine domain-mean --dataset DATASET`` (engine.training.domain) and shipped per embedder in
  engine/models/data/.

The query mean is never taken from the clip being matched: a clip's own regions are dominated by its product, and
removing their mean removes the product (measured on watchlive-dev: clip top-1 0.43 -> 0.14).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ModelError

SHIPPED_DIR = Path(__file__).parent / "data"


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def shipped_path(embedder_key: str) -> Path:
    """Where the shipped livestream mean of an embedder lives."""
    return SHIPPED_DIR / f"livestream-mean-{re.sub(r'[^A-Za-z0-9._-]+', '_', embedder_key)}.npy"


def robust_mean(vectors: np.ndarray) -> np.ndarray:
    """The coordinate-wise median: a domain statistic that one clip's product barely moves, so the same mean
    serves clips that were part of it and clips that were not (measured on watchlive-dev: with the plain mean, a
    clip inside the mean lost part of its own product and clip top-1 fell from 1.00 to 0.71)."""
    return np.median(np.asarray(vectors, np.float32), axis=0).astype(np.float32)


@dataclass(frozen=True)
class DomainMean:
    """A livestream-domain mean vector for one embedder."""

    vector: np.ndarray
    embedder_key: str
    source: str

    @property
    def digest(self) -> str:
        return hashlib.sha1(np.asarray(self.vector, np.float32).tobytes()).hexdigest()[:10]

    @classmethod
    def load(cls, path: str | Path, embedder_key: str) -> DomainMean:
        path = Path(path)
        try:
            vector = np.load(path, allow_pickle=False).astype(np.float32)
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"{path.name}: not a readable livestream mean ({type(e).__name__})") from e
        if meta.get("embedder_key") != embedder_key or vector.ndim != 1:
            raise ModelError(f"{path.name} was computed with {meta.get('embedder_key')!r}, not {embedder_key!r}: "
                             "run python -m engine domain-mean for this embedder")
        return cls(vector, embedder_key, str(path))


def resolve(setting: str, embedder_key: str) -> DomainMean | None:
    """The livestream mean a ``domain_mean`` setting asks for: "auto" is the shipped one of this embedder (None
    when there is none: no centring), "none" switches centring off, anything else is a .npy path."""
    if setting in ("", "none", "off"):
        return None
    if setting == "auto":
        path = shipped_path(embedder_key)
        return DomainMean.load(path, embedder_key) if path.is_file() else None
    return DomainMean.load(setting, embedder_key)
