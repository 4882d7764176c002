"""Box and window geometry, shared by every layer: one ``Box`` type, the garment windows searched inside a detected
region, and boxes relative to or clipped to a region. Pure Python: no numpy, no models.

A box is ``(x0, y0, x1, y1)`` in pixels of its image (or in fractions of a region, for ``relative``).
"""

from __future__ import annotations

from typing import Iterable

Box = tuple[float, float, float, float]



def as_box(values: Iterable[float]) -> Box:
    """Four numbers (a list, a numpy row) as a Box of plain floats."""
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1


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


# COCO keypoint indices (MoveNet's order): left before right.
SHOULDERS, ELBOWS, WRISTS, HIPS, KNEES, ANKLES = (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)
POSE_MIN_SCORE = 0.3  # a keypoint is used at this score or above
POSE_MARGIN = 0.15  # above the shoulders and around the waist, as a share of the torso's height
POSE_WIDEN_UPPER = 0.25  # each side of the arms' and torso's extent, as a share of the body's width (loose tops)
POSE_WIDEN_LOWER = 0.5  # each side of the hips', knees' and ankles' extent (skirts flare past the legs)


def pose_regions(region: Box, xy: list[tuple[float, float]] | tuple[tuple[float, float], ...],
                 scores: list[float] | tuple[float, ...], min_score: float = POSE_MIN_SCORE) -> list[Box] | None:
    """Upper-body, lower-body and full-body garment regions from a person's 17 keypoints (pixels of the frame),
    clipped to the person's region; None when a shoulder or a hip is missing (scores under ``min_score``) or the
    body is upside down: the caller falls back to fixed bands.

    Upper body: from a margin above the shoulders to one below the hips, across the shoulders, arms and hips, widened
    for loose tops. Lower body: from a margin above the hips to the ankles (else below the knees by a torso's
    height, else the region's bottom), across the hips and legs, widened by half the body's width each side for
    skirts. Full body: the union of both (dresses, overalls, coats)."""
    ok = [s >= min_score for s in scores]

    def seen(pairs: tuple[int, ...]) -> list[tuple[float, float]]:
        return [xy[i] for i in pairs if ok[i]]

    shoulders, hips = seen(SHOULDERS), seen(HIPS)
    if not shoulders or not hips:
        return None
    top, waist = min(y for _, y in shoulders), sum(y for _, y in hips) / len(hips)
    torso = waist - top
    if torso <= 1.0:
        return None
    xs = [x for x, _ in shoulders + hips]
    width = max(max(xs) - min(xs), 0.4 * torso)
    rx0, ry0, rx1, ry1 = region
    upper_x = [x for x, _ in shoulders + hips + seen(ELBOWS) + seen(WRISTS)]
    legs = hips + seen(KNEES) + seen(ANKLES)
    if seen(ANKLES):
        bottom = max(y for _, y in seen(ANKLES)) + POSE_MARGIN * torso
    elif seen(KNEES):
        bottom = max(y for _, y in seen(KNEES)) + torso
    else:
        bottom = ry1
    m = POSE_MARGIN * torso
    upper = (min(upper_x) - POSE_WIDEN_UPPER * width, top - m, max(upper_x) + POSE_WIDEN_UPPER * width, waist + m)
    lower = (min(x for x, _ in legs) - POSE_WIDEN_LOWER * width, waist - m,
             max(x for x, _ in legs) + POSE_WIDEN_LOWER * width, bottom)
    full = (min(upper[0], lower[0]), upper[1], max(upper[2], lower[2]), lower[3])

    def inside(b: Box) -> Box:
        x0, y0 = min(max(b[0], rx0), rx1), min(max(b[1], ry0), ry1)
        return (x0, y0, max(x0 + 1.0, min(b[2], rx1)), max(y0 + 1.0, min(b[3], ry1)))

    return [inside(upper), inside(lower), inside(full)]
