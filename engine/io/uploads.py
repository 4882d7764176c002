"""What a person gives when adding a product, checked before anything is written (engine.io.editing): the product's
id, its category, the uploaded images (decoded as they will be stored) and their product boxes."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.categories import CATEGORY_EN
from engine.errors import CatalogueError, ImageError
from engine.geometry import Box
from engine.io.images import read_rgb

MAX_IMAGE_BYTES = 25 * 1024 * 1024
MAX_ID_LENGTH = 64
MIN_BOX_SIDE = 2  # pixels, inside the image
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def validate_product_id(product_id: str) -> str:
    """The id, stripped, if it is safe as a folder name; CatalogueError with the reason otherwise."""
    pid = (product_id or "").strip()
    if not pid:
        raise CatalogueError("the product id is empty")
    if "/" in pid or "\\" in pid or ".." in pid or "\x00" in pid:
        raise CatalogueError(f"the product id {pid!r} may not contain '/', '\\' or '..'")
    if len(pid) > MAX_ID_LENGTH:
        raise CatalogueError(f"the product id is longer than {MAX_ID_LENGTH} characters")
    if not ID_PATTERN.match(pid):
        raise CatalogueError(
            f"the product id {pid!r} may only use letters, digits, '-', '_' and '.', "
            "and must start with a letter or digit"
        )
    return pid


def checked_box(box: Sequence[float], size: tuple[int, int], label: str = "the image") -> Box:
    """A product box (x0, y0, x1, y1) in pixels of an image of (width, height), clipped to the image and rounded
    to 0.1 pixel; CatalogueError when it is not four finite numbers, has no area or lies outside the image."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise CatalogueError(f"{label}: a product box is four numbers (x0, y0, x1, y1), got {box!r}") from None
    shown = f"({x0:g}, {y0:g}, {x1:g}, {y1:g})"
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise CatalogueError(f"{label}: the product box {shown} is not made of finite numbers")
    if x1 <= x0 or y1 <= y0:
        raise CatalogueError(f"{label}: the product box {shown} has no area (x1 must exceed x0, and y1 exceed y0)")
    w, h = size
    cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
    if cx1 <= cx0 or cy1 <= cy0:
        raise CatalogueError(f"{label}: the product box {shown} lies outside the {w}x{h} image")
    if cx1 - cx0 < MIN_BOX_SIDE or cy1 - cy0 < MIN_BOX_SIDE:
        raise CatalogueError(f"{label}: the product box {shown} is less than {MIN_BOX_SIDE} pixels wide or high "
                             f"inside the {w}x{h} image")
    return (round(cx0, 1), round(cy0, 1), round(cx1, 1), round(cy1, 1))


def box_list(boxes: Sequence[Sequence[float] | None] | None, n: int, layout: str) -> list[Sequence[float] | None]:
    """One box (or None) per image; boxes are refused where the layout cannot keep them."""
    if boxes is None:
        return [None] * n
    wanted = list(boxes)
    if len(wanted) != n:
        raise CatalogueError(f"give one box (or none) per image: {n} image(s), {len(wanted)} box(es)")
    if layout != "tianchi" and any(b is not None for b in wanted):
        raise CatalogueError("this catalogue (a folder per product) keeps no product boxes; only a catalogue in the "
                             "Tianchi layout (image/, image_annotation/) does. Add the images without boxes.")
    return wanted


def normalise_category(category: str) -> str:
    """A Tianchi category key from a key or its English name; "" stays "" (unknown); anything else is refused."""
    c = (category or "").strip()
    if not c or c in CATEGORY_EN:
        return c
    for key, en in CATEGORY_EN.items():
        if en.lower() == c.lower():
            return key
    raise CatalogueError(f"unknown category {category!r}; choose one of {', '.join(CATEGORY_EN.values())}")


def decode_upload(filename: str, data: bytes, n: int = 0) -> np.ndarray:
    """An uploaded image (the ``n``-th) decoded as it will be stored: RGB, orientation applied, at most 1600 pixels
    on a side. ImageError names the file (its base name only) when it is empty, too large or unreadable."""
    label = upload_label(filename, n)
    if not data:
        raise ImageError(f"{label}: the file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{label}: larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    with tempfile.TemporaryDirectory(prefix="livematch-upload-") as tmp:
        raw = Path(tmp) / f"upload-{n}"
        raw.write_bytes(data)
        try:
            return read_rgb(raw)
        except ImageError as e:
            raise ImageError(f"{label}: {str(e).split(': ', 1)[-1]}") from e


def upload_label(filename: str, n: int) -> str:
    return Path(str(filename or f"image {n + 1}")).name or f"image {n + 1}"
