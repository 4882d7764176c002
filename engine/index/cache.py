"""On-disk cache of catalogue region embeddings, keyed by image content, boxes and model.

A rebuild of the index only embeds images whose bytes (or regions, or model) changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from engine.geometry import Box
from engine.io.files import atomic_write


class EmbeddingCache:
    """One .npy per (image content, boxes, model key) under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, digest: str, boxes: list[Box], model_key: str) -> Path:
        k = hashlib.sha256(json.dumps([digest, [list(map(float, b)) for b in boxes], model_key]).encode()).hexdigest()
        return self.root / k[:2] / f"{k}.npy"

    def get(self, digest: str, boxes: list[Box], model_key: str, dim: int) -> np.ndarray | None:
        p = self._path(digest, boxes, model_key)
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            self.misses += 1
            return None
        if arr.shape != (len(boxes), dim):
            self.misses += 1
            return None
        self.hits += 1
        return arr

    def get_json(self, key: list) -> object | None:
        p = self.root / "json" / (hashlib.sha256(json.dumps(key).encode()).hexdigest() + ".json")
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def put_json(self, key: list, value: object) -> None:
        p = self.root / "json" / (hashlib.sha256(json.dumps(key).encode()).hexdigest() + ".json")
        with atomic_write(p) as f:
            json.dump(value, f)

    def put(self, digest: str, boxes: list[Box], model_key: str, vectors: np.ndarray) -> None:
        p = self._path(digest, boxes, model_key)
        try:
            with atomic_write(p, binary=True) as f:
                np.save(f, vectors.astype(np.float32), allow_pickle=False)
        except OSError:  # a cache that cannot be written is only slower
            pass
