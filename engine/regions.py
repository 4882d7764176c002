"""Garment-level windows inside a detected person (or whole-frame) region.

COCO detectors find people, not garments; a catalogue annotates garments. Comparing a whole person
with a photo of a skirt mixes in the top, the legs and the background. Each detected region is
therefore searched through a small set of horizontal bands at several heights and positions, which
together cover where a top, a skirt, a dress or trousers can sit on a standing or seated person.
Each band is compared with the catalogue's garment regions and the best pair wins: a search over
garment positions, instead of a fixed guess.
"""

from __future__ import annotations

Box = tuple[float, ...]

BAND_HEIGHTS: tuple[float, ...] = (0.3, 0.45, 0.6)  # fractions of the region's height
BAND_STRIDE = 0.1
BAND_START = 0.05


def band_fractions() -> list[tuple[float, float]]:
    """(top, bottom) of every garment window as fractions of its region's height, region first."""
    return [(w[1], w[3]) for w in garment_windows((0.0, 0.0, 1.0, 1.0))]


def garment_windows(
    box: Box, heights: tuple[float, ...] = BAND_HEIGHTS, stride: float = BAND_STRIDE
) -> list[Box]:
    """The region itself first, then full-width bands of each height, top to bottom."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    windows: list[Box] = [tuple(box)]
    for fraction in heights:
        start = BAND_START
        while start + fraction <= 1.0 + 1e-6:
            windows.append((x0, y0 + start * h, x1, y0 + (start + fraction) * h))
            start += stride
    return windows
