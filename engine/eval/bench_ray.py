"""Catalogue embedding on Ray: images per second with 1, 2, ... local workers on a generated catalogue.

The catalogue is drawn like the built-in demo's shop photos (engine.io.demo), in the Tianchi layout with one
annotated product box per image, so the figure is embedding throughput (no detection). Every run embeds into a
fresh cache; its time includes starting the workers and loading their models, not starting Ray itself.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from engine.config import Settings
from engine.index.cache import EmbeddingCache
from engine.index.ray_build import ray_catalogue_regions, ray_module, start_ray
from engine.io.catalogue import load_catalogue
from engine.io.demo.sprites import plan_products, render_sprite, shop_image
from engine.pipeline.catalogue import catalogue_regions
from engine.pipeline.engine import Engine, chunk_embedder


@dataclass(frozen=True)
class RayBench:
    workers: int  # 0: the plain in-process build, for reference
    images: int
    regions: int
    seconds: float
    images_per_s: float


def generate_catalogue(out: Path, n_images: int, per_product: int = 4, seed: int = 0) -> Path:
    """n_images shop photos of n_images / per_product products, each with its product box; products.json gives
    every product a name and one of five shops."""
    products = plan_products(-(-n_images // per_product), seed)
    names = {}
    for i, p in enumerate(products):
        sprite, rng = render_sprite(p), np.random.default_rng([seed, 2, i])
        (out / "image" / p.item_id).mkdir(parents=True, exist_ok=True)
        (out / "image_annotation" / p.item_id).mkdir(parents=True, exist_ok=True)
        for k in range(min(per_product, n_images - i * per_product)):
            img, box = shop_image(sprite, rng)
            cv2.imwrite(str(out / "image" / p.item_id / f"{k}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            ann = {"box": box, "label": p.category, "instance_id": int(p.item_id) * 100 + 1, "viewpoint": 0, "display": 1}
            (out / "image_annotation" / p.item_id / f"{k}.json").write_text(
                json.dumps({"item_id": p.item_id, "img_name": f"{k}.jpg", "annotations": [ann]}))
        names[p.item_id] = {"name": p.name, "category": p.category, "shop": f"shop-{i % 5}"}
    (out / "products.json").write_text(json.dumps(names, ensure_ascii=False))
    return out


def run(n_images: int = 2000, workers: tuple[int, ...] = (1, 2), plain: bool = True, settings: Settings | None = None,
        print_row: Callable[[RayBench], None] = print) -> list[RayBench]:
    settings = settings or Settings.from_env()
    rows: list[RayBench] = []
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as d:
        catalogue = load_catalogue(generate_catalogue(Path(d) / "catalogue", n_images))
        runs: list[tuple[int, Callable]] = [(0, lambda c: catalogue_regions(Engine(settings), catalogue, cache=c))] \
            if plain else []
        build = partial(chunk_embedder, settings)
        runs += [(w, lambda c, w=w: ray_catalogue_regions(build, catalogue, "local", w, cache=c)) for w in workers]
        started = start_ray("local")
        try:
            for w, embed in runs:
                t0 = time.perf_counter()
                _, items, _ = embed(EmbeddingCache(Path(d) / f"cache-{w}"))
                s = time.perf_counter() - t0
                rows.append(RayBench(w, catalogue.n_images, len(items), round(s, 2), round(catalogue.n_images / s, 1)))
                print_row(rows[-1])
        finally:
            if started:
                ray_module().shutdown()
    return rows


def format_row(r: RayBench) -> str:
    who = "plain (in-process)" if r.workers == 0 else f"ray, {r.workers} worker{'s' if r.workers > 1 else ''}"
    return f"{who:<20} {r.images:>6} images  {r.regions:>6} regions  {r.seconds:8.1f} s  {r.images_per_s:7.1f} images/s"


def as_dicts(rows: list[RayBench]) -> list[dict]:
    return [asdict(r) for r in rows]
