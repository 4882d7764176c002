"""Learned heads over the frozen backbone, and their versioned checkpoints.

- :class:`ProjectionHead`: a linear projection of the pooled backbone feature, trained with a
  triplet loss (``python -m engine train-embedding``). It starts as the identity (or an orthogonal
  projection when it reduces the dimension), so an untrained head changes nothing.
- :class:`HeadEmbedder`: any embedder followed by a projection head. Its ``key`` carries the
  checkpoint's digest, so an index built with one head is never searched with another.

Checkpoints are plain dicts of tensors and JSON-like metadata, read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from engine.geometry import Box
from engine.errors import ModelError
from engine.io.files import atomic_write
from engine.models.protocols import Embedder, pools_bands

CHECKPOINT_FORMAT = 1


def projection_head(in_dim: int, out_dim: int):  # -> torch.nn.Linear
    """A bias-free linear layer, initialised to the identity (or orthogonal rows when out_dim < in_dim)."""
    import torch

    layer = torch.nn.Linear(in_dim, out_dim, bias=False)
    with torch.no_grad():
        if out_dim == in_dim:
            layer.weight.copy_(torch.eye(in_dim))
        else:
            torch.nn.init.orthogonal_(layer.weight)
    return layer


def save_checkpoint(path: str | Path, kind: str, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write {format, kind, state, meta} atomically; returns the path."""
    import torch

    with atomic_write(path, binary=True) as f:
        torch.save({"format": CHECKPOINT_FORMAT, "kind": kind, "state": state, "meta": json.dumps(meta)}, f)
    return Path(path)


def load_checkpoint(path: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a checkpoint of that kind; a clear ModelError for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same error to the user
        raise ModelError(f"{path.name} is not a readable checkpoint ({type(e).__name__})") from e
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT or data.get("kind") != kind:
        raise ModelError(f"{path.name} is not a {kind} checkpoint of format {CHECKPOINT_FORMAT}")
    try:
        meta = json.loads(data["meta"])
    except (KeyError, ValueError) as e:
        raise ModelError(f"{path.name}: checkpoint metadata is unreadable") from e
    return data["state"], meta


def next_version(folder: str | Path, stem: str) -> Path:
    """``folder/stem-v001.pt``, ``-v002`` ...: the first version number not taken yet."""
    folder = Path(folder)
    taken = [int(m.group(1)) for p in folder.glob(f"{stem}-v*.pt")
             if (m := re.fullmatch(rf"{re.escape(stem)}-v(\d+)\.pt", p.name))]
    return folder / f"{stem}-v{max(taken, default=0) + 1:03d}.pt"


def checkpoint_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


class HeadEmbedder:
    """An embedder followed by a trained projection head (L2-normalised output): an embedder over a base
    (engine.models.protocols.WithBase) whose feature maps, input size, runtime and precision are the base's."""

    def __init__(self, base: Embedder, checkpoint: str | Path) -> None:
        import torch

        state, meta = load_checkpoint(checkpoint, "projection-head")
        if meta.get("base_key") != base.key:
            raise ModelError(f"{Path(checkpoint).name} was trained on {meta.get('base_key')}, "
                             f"not on {base.key}: choose the embedder it was trained for")
        weight = state["weight"].float()
        if weight.ndim != 2 or weight.shape[1] != base.dim:
            raise ModelError(f"{Path(checkpoint).name}: head shape {tuple(weight.shape)} does not fit {base.dim}-d")
        self.base = base
        self.meta = meta
        self.checkpoint = str(checkpoint)
        self._weight_t = weight.t().contiguous().numpy()
        self._torch = torch
        self.dim = int(weight.shape[0])
        self.device, self.runtime, self.precision = base.device, base.runtime, base.precision
        self.input_hw = base.input_hw
        self.name = f"{base.name}+{Path(checkpoint).stem}"
        digest = checkpoint_digest(checkpoint)
        self.key = f"{base.key}/head:{digest}"
        self.vectors_key = f"{base.vectors_key}/head:{digest}"  # the base's precision included
        self.supports_bands = pools_bands(base)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        out = vectors.reshape(-1, vectors.shape[-1]) @ self._weight_t
        out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-12
        return out.reshape(*vectors.shape[:-1], self.dim).astype(np.float32)

    def embed(self, crops: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        return self.project(self.base.embed(crops, batch_size)) if crops else np.zeros((0, self.dim), np.float32)

    def _pooler(self):  # -> BandPooler: the base, when it pools bands
        if not pools_bands(self.base):
            raise ModelError(f"{self.base.name} has no feature maps to pool: choose an EfficientNet-Lite GeM embedder")
        return self.base

    def feature_maps(self, regions: list[np.ndarray], batch_size: int = 16) -> list[Any]:
        """The base's feature maps (the head projects pooled vectors, not maps)."""
        return self._pooler().feature_maps(regions, batch_size)

    def embed_bands(self, regions: list[np.ndarray], bands: list[tuple[float, float]],
                    batch_size: int = 16) -> np.ndarray:
        return self.project(self._pooler().embed_bands(regions, bands, batch_size))

    def pool_boxes(self, fmap: Any, boxes: list[Box]) -> np.ndarray:
        return self.project(self._pooler().pool_boxes(fmap, boxes))


def list_checkpoints(folder: str | Path, kind: str) -> list[tuple[Path, dict[str, Any]]]:
    """Readable checkpoints of ``kind`` in ``folder`` (newest version last), with their metadata.
    Unreadable files are left out; they never stop a listing."""
    stem = {"projection-head": "embedding-head-", "garment-head": "garment-head"}.get(kind, kind)
    out = []
    for path in sorted(Path(folder).glob(f"{stem}*.pt")):
        try:
            out.append((path, load_checkpoint(path, kind)[1]))
        except ModelError:
            continue
    return out
