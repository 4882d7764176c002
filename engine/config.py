"""Settings: one frozen dataclass; environment variables ``LIVEMATCH_<FIELD>`` override defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


def _cache_home() -> Path:
    return Path(os.environ.get("LIVEMATCH_HOME", Path.home() / ".cache" / "livematch"))


@dataclass(frozen=True)
class Settings:
    """Every knob of the pipeline, with the defaults the app and the CLI use."""

    catalogue: str = ""  # dataset folder; empty means the built-in demo
    index_dir: str = ""  # where the index lives; empty means <home>/index/<catalogue hash>
    detector: str = "ssd-mobilenet-v2-coco"
    embedder: str = "efficientnet-lite0-gem"
    frames: int = 10
    det_threshold: float = 0.4
    side_by_side: bool = True  # detect on portrait frames set side by side in pairs (half the SSD passes)
    max_regions: int = 2  # detector regions kept per frame, highest score first
    min_region_area: float = 0.02  # ignore boxes smaller than this fraction of the frame (avatars, passers-by)
    neighbours: int = 50  # regions fetched from the index per query region
    top_k: int = 5
    garment_windows: bool = True  # search each region through garment-level bands (False: whole regions only)
    refine_windows: int = -1  # -1: embed every garment window (accurate); k >= 0: pool all, re-embed the best k (fast)
    region_candidates: int = 10  # products kept per region for display and inspection
    index_backend: str = "annoy"  # "annoy", or "faiss" for very large catalogues (see bench-index)
    n_trees: int = 50
    search_k: int = -1  # -1: Annoy's default (n_trees * n)
    batch_size: int = 8  # on 2-core CPUs batches of 8 embed fastest (see python -m engine bench)
    head: str = ""  # projection head checkpoint from train-embedding ("" = the backbone's own features)
    garment_model: str = ""  # garment region head from train-garments ("" = searched garment windows)
    garment_top: int = 3  # windows per region kept by the garment head
    category_weight: float = 0.0  # similarity penalty for catalogue regions of another (merged) category
    category_source: str = "fused"  # a window's category: "fused" (head + k-NN), "head" or "knn"
    device: str = "auto"  # "auto", "cpu" or "cuda"
    seed: int = 0

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then ``LIVEMATCH_*`` environment variables, then explicit overrides."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"LIVEMATCH_{f.name.upper()}")
            if raw is not None:
                kind = type(f.default)
                if kind is bool:  # bool("0") would be True
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                else:
                    values[f.name] = kind(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)

    @property
    def home(self) -> Path:
        return _cache_home()


def index_dir_for(catalogue_root: str | Path, settings: Settings) -> Path:
    """Where the index of a catalogue lives, unless settings.index_dir says otherwise."""
    import hashlib

    if settings.index_dir:
        return Path(settings.index_dir)
    key = hashlib.sha1(str(Path(catalogue_root).resolve()).encode()).hexdigest()[:12]
    backend = "" if settings.index_backend == "annoy" else f"-{settings.index_backend}"
    if settings.head:
        backend += "-" + hashlib.sha1(str(Path(settings.head).resolve()).encode()).hexdigest()[:8]
    return settings.home / "index" / f"{Path(catalogue_root).name}-{key}-{settings.embedder}{backend}"
