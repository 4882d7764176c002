"""Product boxes from a catalogue's annotation files: parsed defensively (``parse_annotations``: a bad entry is
reported and dropped, never raised) and fitted to the photo as it is read (``fit_regions``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.geometry import Box
from engine.io.images import MAX_SIDE, image_size, stored_scale
from engine.types import RegionRef

MAX_INSTANCE_ID = 2**31 - 1
MIN_BOX_SIDE = 2.0  # pixels inside the image; a box smaller than this is reported and skipped


def _number(v: Any) -> float:
    """A finite coordinate from JSON: an int or a float (not a bool, text or an overflowing integer)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("not a number")
    x = float(v)  # OverflowError for an integer of hundreds of digits
    if not math.isfinite(x):
        raise ValueError("not finite")
    return x


def _parse_box(raw: Any) -> Box | None:
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        return None
    try:
        x0, y0, x1, y1 = (_number(v) for v in raw)
    except (TypeError, ValueError, OverflowError):
        return None
    if not (x1 > x0 and y1 > y0) or min(x0, y0) < -1e4 or max(x1, y1) > 1e5:
        return None
    return (max(0.0, x0), max(0.0, y0), x1, y1)


def _instance_id(raw: Any) -> int | None:
    """An annotation's instance id: a whole number from 0 to 2^31 - 1 (absent or null: 0); None when it is not."""
    if raw is None:
        return 0
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, int) and 0 <= raw <= MAX_INSTANCE_ID:
        return raw
    return None


def parse_annotations(
    items: Any, product_id: str, image_path: str, problems: list[str], where: str
) -> tuple[RegionRef, ...]:
    """Turn an annotation list into regions; bad entries are reported and dropped."""
    regions = []
    if not isinstance(items, list):
        problems.append(f"{where}: 'annotations' is not a list, ignored")
        return ()
    for i, a in enumerate(items):
        box = _parse_box(a.get("box")) if isinstance(a, dict) else None
        if box is None:
            problems.append(f"{where}: annotation {i} has no valid box, ignored")
            continue
        instance = _instance_id(a.get("instance_id"))
        if instance is None:
            problems.append(f"{where}: annotation {i} has an instance id that is not a whole number from 0 to "
                            f"{MAX_INSTANCE_ID}, ignored")
            continue
        label = a.get("label", "")
        regions.append(RegionRef(product_id, image_path, box, label if isinstance(label, str) else "", instance,
                                 "annotation"))
    return tuple(regions)


def fit_regions(regions: tuple[RegionRef, ...], image: Path, problems: list[str], where: str,
                max_side: int = MAX_SIDE) -> tuple[RegionRef, ...]:
    """Annotated regions of one photo in the pixels it is read at: scaled with it when ``read_rgb`` downscales it,
    clipped to it; a box that lies outside the photo (or keeps under 2 pixels of it) is reported and dropped."""
    if not regions:
        return regions
    try:
        size = image_size(image)
    except EngineError:
        return regions  # the photo itself is unreadable: the build reports and skips it
    k = stored_scale(size, max_side)
    w, h = size[0] * k, size[1] * k
    out = []
    for i, r in enumerate(regions):
        x0, y0, x1, y1 = (v * k for v in r.box)
        cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(w, x1), min(h, y1)
        if cx1 - cx0 < MIN_BOX_SIDE or cy1 - cy0 < MIN_BOX_SIDE:
            shown = ", ".join(f"{v:g}" for v in r.box)
            problems.append(f"{where}: annotation {i}'s box ({shown}) lies outside the {size[0]}x{size[1]} image, "
                            "ignored")
            continue
        box = (round(cx0, 2), round(cy0, 2), round(cx1, 2), round(cy1, 2))
        out.append(RegionRef(r.product_id, r.image_path, box, r.category, r.instance_id, r.source))
    return tuple(out)
