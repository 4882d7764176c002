"""Training data for the learned parts: labelled garment regions from shop images and clip frames.

Every annotated product box (``instance_id`` != 0) becomes a :class:`TrainRegion` of its product, in
the "shop" domain (catalogue images) or the "clip" domain (annotated clip frames). Splits are by
product (leave products out), so nothing learned has seen the products it is evaluated on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.geometry import Box
from engine.io.catalogue import Catalogue
from engine.categories import merged
from engine.errors import ImageError, VideoError
from engine.io.images import crop, read_rgb
from engine.io.video import read_frames
from engine.types import Frame


@dataclass(frozen=True)
class TrainRegion:
    """One annotated product region: where it comes from and what it shows."""

    product_id: str
    category: str  # the annotation's label
    domain: str  # "shop" (catalogue image) or "clip" (annotated clip frame)
    source: str  # image path, or clip path for clip frames
    frame_index: int  # -1 for shop images
    box: Box

    @property
    def group(self) -> str:
        """The merged category (see categories.MERGE_TABLE), used to pick same-category negatives."""
        return merged(self.category)


@dataclass(frozen=True)
class AnnotatedImage:
    """An image (shop image or clip frame) with every garment box annotated in it."""

    source: str
    frame_index: int
    product_id: str
    boxes: tuple[Box, ...]
    categories: tuple[str, ...]
    domain: str


def product_regions(catalogue: Catalogue, products: set[str] | None = None, clips: bool = True,
                    whole_images: bool = True) -> list[TrainRegion]:
    """Annotated product regions of the given products (all when None): shop images, then clip frames.

    With ``whole_images``, a shop image without any annotated box counts as one region covering the
    whole image, so catalogues without box annotations (a folder per product) can train too."""
    keep = set(catalogue.products) if products is None else set(products)
    regions: list[TrainRegion] = []
    for pid in sorted(keep & set(catalogue.products)):
        product = catalogue.products[pid]
        annotated = [r for r in product.regions if r.instance_id != 0 and r.source == "annotation"]
        regions += [TrainRegion(r.product_id, r.category, "shop", r.image_path, -1, tuple(r.box))  # type: ignore
                    for r in annotated]
        if whole_images:
            boxed = {r.image_path for r in product.regions if r.source == "annotation"}
            for image in product.images:
                size = _image_size(image) if image not in boxed else None
                if size:
                    regions.append(TrainRegion(pid, product.category, "shop", image, -1,
                                               (0.0, 0.0, float(size[0]), float(size[1]))))
    if clips:
        for clip in sorted(catalogue.clips.values(), key=lambda c: c.video_id):
            if not clip.path or clip.truth not in keep:
                continue
            for index, regs in clip.frames:
                regions += [TrainRegion(clip.truth, r.category, "clip", clip.path, index, tuple(r.box))  # type: ignore
                            for r in regs if r.instance_id != 0]
    return regions


def annotated_images(catalogue: Catalogue, products: set[str] | None = None, shop: bool = True,
                     clips: bool = True) -> list[AnnotatedImage]:
    """Images with all their garment boxes (product and other garments), for training a region detector."""
    keep = set(catalogue.products) if products is None else set(products)
    out: list[AnnotatedImage] = []
    if shop:
        for pid in sorted(keep & set(catalogue.products)):
            p = catalogue.products[pid]
            for img in p.images:
                regs = [r for r in p.regions if r.image_path == img and r.source == "annotation"]
                if regs:
                    out.append(AnnotatedImage(img, -1, pid, tuple(tuple(r.box) for r in regs),  # type: ignore
                                              tuple(r.category for r in regs), "shop"))
    if clips:
        for clip in sorted(catalogue.clips.values(), key=lambda c: c.video_id):
            if not clip.path or clip.truth not in keep:
                continue
            for index, regs in clip.frames:
                if regs:
                    out.append(AnnotatedImage(clip.path, index, clip.truth or "", tuple(tuple(r.box) for r in regs),  # type: ignore
                                              tuple(r.category for r in regs), "clip"))
    return out


def _image_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the image header, or None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - unreadable images are skipped, as everywhere else
        return None


class ImageReader:
    """Reads shop images and single clip frames (by seeking), keeping what it read."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], np.ndarray | None] = {}

    def get(self, source: str, frame_index: int = -1) -> np.ndarray | None:
        key = (source, frame_index)
        if key not in self._cache:
            self._cache[key] = self._read(source, frame_index)
        return self._cache[key]

    @staticmethod
    def _read(source: str, frame_index: int) -> np.ndarray | None:
        if frame_index < 0:
            try:
                return read_rgb(source)
            except ImageError:
                return None
        try:
            found = read_frames(source, [frame_index], downscale=False)
        except VideoError:
            return None
        return found[0].image if found else None

    def crop(self, region: TrainRegion) -> np.ndarray | None:
        image = self.get(region.source, region.frame_index)
        return None if image is None else crop(image, region.box)

    def frame(self, image: AnnotatedImage) -> Frame | None:
        rgb = self.get(image.source, image.frame_index)
        return None if rgb is None else Frame(max(0, image.frame_index), 0.0, rgb)


def product_folds(catalogue: Catalogue, n_folds: int = 5) -> list[set[str]]:
    """Leave-products-out folds over the products that have a clip to evaluate (a video and a known truth).

    Fold k holds out its products: models of fold k are trained on every other product, and only
    fold k's clips are evaluated with them. Products are dealt to folds in sorted order.
    """
    evaluable = sorted({c.truth for c in catalogue.clips.values()
                        if c.path and c.truth in catalogue.products})
    n = max(1, min(n_folds, len(evaluable)))
    folds: list[set[str]] = [set() for _ in range(n)]
    for i, pid in enumerate(evaluable):
        folds[i % n].add(pid)
    return [f for f in folds if f]
