"""The catalogue side: product images -> regions (annotated product boxes, else detected, else the whole
image) -> embeddings, batched per chunk of images and cached by image content."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import ImageError
from engine.geometry import as_box
from engine.index.cache import EmbeddingCache
from engine.io.files import file_digest
from engine.io.catalogue import Catalogue
from engine.io.images import crop, read_rgb
from engine.pipeline.regions import product_regions
from engine.types import RegionRef

Progress = Callable[[str, float], None]


def _no_progress(stage: str, fraction: float) -> None:
    pass


def catalogue_regions(
    engine,
    catalogue: Catalogue,
    progress: Progress = _no_progress,
    cache: EmbeddingCache | None = None,
    chunk: int = 32,
) -> tuple[np.ndarray, list[RegionRef], list[str]]:
    """Embed every product region: annotated product boxes where present, else detected, else whole image.

    Images are processed in chunks: detection and embedding are batched across the images of a chunk,
    and both are cached by image content, so a rebuild only works on what changed.
    """
    cache = cache or EmbeddingCache(engine.settings.home / "embeddings")
    vectors: list[np.ndarray] = []
    items: list[RegionRef] = []
    problems: list[str] = []
    jobs = [(p, img) for p in catalogue.products.values() for img in p.images]
    for start in range(0, len(jobs), chunk):
        progress("embed", start / max(1, len(jobs)))
        for product, img_path, boxes, cats, source, vecs in embed_chunk(engine, jobs[start : start + chunk], cache, problems):
            vectors.append(vecs)
            items.extend(RegionRef(product.product_id, img_path, tuple(b), c, 0, source)
                         for b, c in zip(boxes, cats))
    progress("embed", 1.0)
    dim = engine.embedder.dim
    return (np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)), items, problems

def embed_chunk(engine, jobs: list, cache: EmbeddingCache, problems: list[str]) -> list[tuple]:
    """Embed one chunk of catalogue images with ``engine``'s detector and embedder, through ``cache``.

    ``jobs``: (product, image path) pairs. Returns one (product, image path, boxes, categories, source, vectors)
    per image that could be read, in the order of ``jobs``; a problem with an image is appended to ``problems``
    and the image skipped. ``catalogue_regions`` calls it chunk by chunk; a distributor (engine.index.ray_build)
    calls it in its workers, through ``engine.pipeline.engine.chunk_embedder``."""
    emb, s = engine.embedder, engine.settings
    planned, images = [], {}
    to_detect = []
    for product, img_path in jobs:
        try:
            digest = file_digest(img_path)
        except OSError as e:
            problems.append(f"{Path(img_path).name} of {product.product_id}: {e}; skipped")
            continue
        annotated = [r for r in product.regions if r.image_path == img_path and r.instance_id != 0]
        if annotated:
            planned.append([product, img_path, digest, [r.box for r in annotated],
                            [r.category for r in annotated], "annotation"])
            continue
        cached = cache.get_json(["regions", digest, s.models.detector, s.detection.det_threshold, s.detection.max_regions])
        if cached is not None:
            boxes, source = [tuple(b) for b in cached["boxes"]], cached["source"]
            planned.append([product, img_path, digest, boxes, [product.category] * len(boxes), source])
        else:
            planned.append([product, img_path, digest, None, None, None])
            to_detect.append(len(planned) - 1)
    readable = _read_images(planned, to_detect, images, problems)
    if readable:
        dets = engine.detector.detect([images[planned[i][1]] for i in readable], s.detection.det_threshold)
        for i, det in zip(readable, dets):
            product, img_path, digest = planned[i][:3]
            det = product_regions(det, images[img_path], s.detection)
            boxes = [as_box(b) for b in det.boxes]
            cache.put_json(["regions", digest, s.models.detector, s.detection.det_threshold, s.detection.max_regions],
                           {"boxes": boxes, "source": det.source})
            planned[i][3:] = [boxes, [product.category] * len(boxes), det.source]
    planned = [p for p in planned if p[3] is not None]
    found: list[np.ndarray | None] = [cache.get(p[2], p[3], emb.vectors_key, emb.dim) for p in planned]
    missing = [i for i, v in enumerate(found) if v is None]
    ok = _read_images(planned, missing, images, problems)
    crops, owners = [], []
    for i in ok:
        for b in planned[i][3]:
            crops.append(crop(images[planned[i][1]], b))
            owners.append(i)
    if crops:
        vecs = emb.embed(crops, s.models.batch_size)
        for i in ok:
            found[i] = vecs[[k for k, o in enumerate(owners) if o == i]]
            cache.put(planned[i][2], planned[i][3], emb.vectors_key, found[i])
    return [(p[0], p[1], p[3], p[4], p[5], v) for p, v in zip(planned, found)
            if v is not None and p[3] is not None]

def _read_images(planned: list, ids: list[int], images: dict[str, np.ndarray], problems: list[str]) -> list[int]:
    """Read the images of planned[i] for i in ids into ``images``; returns the ids that could be read."""
    ok = []
    for i in ids:
        product, img_path = planned[i][0], planned[i][1]
        if img_path not in images:
            try:
                images[img_path] = read_rgb(img_path)
            except ImageError as e:
                planned[i][3] = None
                problems.append(f"{Path(img_path).name} of {product.product_id}: {e}; skipped")
                continue
        ok.append(i)
    return ok

