"""Box and window geometry, shared by every layer: one ``Box`` type, the garment windows searched inside a detected
region, and boxes relative to or clipped to a region. Pure Python: no numpy, no models.

A box is ``(x0, y0, x1, y1)`` in pixels of its image (or in fractions of a region, for ``relative``).
"""

from __future__ import annotations

from typing import Iterable

Box = tuple[float, float, float, float]

BAND_HEIGHTS: tuple[float, ...] = (0.3, 0.45, 0.6)  # fractions of the region's height
BAND_STRIDE = 0.1
BAND_START = 0.05


def band_fractions() -> list[tuple[float, float]]:
    """(top, bottom) of every garment window as fractions of its region's height, region first."""
    return [(w[1], w[3]) for w in garment_windows((0.0, 0.0, 1.0, 1.0))]


def garment_windows(
    box: Box | Iterable[float], heights: tuple[float, ...] = BAND_HEIGHTS, stride: float = BAND_STRIDE
) -> list[Box]:
    """The region itself first, then full-width bands of each height, top to bottom.

    COCO detectors find people, not garments; a catalogue annotates garments. These bands, at several heights
    and positions, cover where a top, a skirt, a dress or trousers can sit on a standing or seated person."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    windows: list[Box] = [tuple(box)]  # type: ignore[list-item]
    for fraction in heights:
        start = BAND_START
        while start + fraction <= 1.0 + 1e-6:
            windows.append((x0, y0 + start * h, x1, y0 + (start + fraction) * h))
            start += stride
    return windows


def relative(box: Box, region: Box) -> Box:
    """A box as fractions (x0, y0, x1, y1) of a region box."""
    w, h = max(1e-6, region[2] - region[0]), max(1e-6, region[3] - region[1])
    return ((box[0] - region[0]) / w, (box[1] - region[1]) / h, (box[2] - region[0]) / w, (box[3] - region[1]) / h)


def clipped(box: Box | Iterable[float], image_hw: tuple[int, int]) -> Box:
    """A box clipped to an image of (height, width)."""
    h, w = image_hw
    x0, y0, x1, y1 = (float(v) for v in box)
    return (max(0.0, min(x0, w)), max(0.0, min(y0, h)), max(0.0, min(x1, w)), max(0.0, min(y1, h)))
