"""The built-in demo dataset: a synthetic catalogue and livestream clips, made offline.

``generate_demo(out_dir)`` writes a small dataset in the Tianchi live-stream layout, so the importer that
reads the real data reads this one too::

    OUT/image/<item_id>/<n>.jpg                shop images of each catalogue product
    OUT/image_annotation/<item_id>/<n>.json    {"item_id", "img_name", "annotations": [...]}
    OUT/video/<video_id>.mp4                   livestream-like clips, 20 fps
    OUT/video_annotation/<video_id>.json       {"video_id", "frames": [{"frame_index", "annotations"}]}
    OUT/demo.json                              products, clips and the parameters that made them

Ground truth follows the competition's convention: a clip shows the product whose ``item_id`` equals its
``video_id``. Everything is drawn with OpenCV from a seeded numpy generator, so the same parameters give the
same shop images and annotations, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from .categories import CATEGORY_EN
from .errors import EngineError

DEMO_VERSION = 1
FPS = 20
SHOP_SIZE = 320
SHOP_IMAGES_PER_PRODUCT = 3
ANNOTATE_EVERY = 10
FIRST_ITEM_ID = 900001

DEMO_CATEGORIES: dict[str, str] = {
    k: CATEGORY_EN[k] for k in ("短袖上衣", "长袖上衣", "短袖连衣裙", "短裙", "长裤", "短外套")
}

# Per category: the noun in a display name, the drawing canvas (w, h) in pixels, the outline in unit
# coordinates of that canvas, and the two points where the presenter's hands hold the garment.
_SHAPES: dict[str, tuple[str, tuple[int, int], list[tuple[float, float]], list[tuple[float, float]]]] = {
    "短袖上衣": ("T-shirt", (300, 270), [
        (0.38, 0.0), (0.5, 0.07), (0.62, 0.0), (0.80, 0.05), (1.0, 0.30), (0.88, 0.42), (0.78, 0.32),
        (0.78, 1.0), (0.22, 1.0), (0.22, 0.32), (0.12, 0.42), (0.0, 0.30), (0.20, 0.05)],
        [(0.22, 0.06), (0.78, 0.06)]),
    "长袖上衣": ("long-sleeve top", (320, 290), [
        (0.39, 0.0), (0.5, 0.06), (0.61, 0.0), (0.78, 0.04), (1.0, 0.86), (0.89, 0.90), (0.77, 0.32),
        (0.77, 1.0), (0.23, 1.0), (0.23, 0.32), (0.11, 0.90), (0.0, 0.86), (0.22, 0.04)],
        [(0.24, 0.05), (0.76, 0.05)]),
    "短袖连衣裙": ("dress", (260, 420), [
        (0.40, 0.0), (0.5, 0.05), (0.60, 0.0), (0.74, 0.03), (0.92, 0.17), (0.82, 0.24), (0.72, 0.18),
        (0.67, 0.40), (1.0, 1.0), (0.0, 1.0), (0.33, 0.40), (0.28, 0.18), (0.18, 0.24), (0.08, 0.17),
        (0.26, 0.03)],
        [(0.28, 0.04), (0.72, 0.04)]),
    "短裙": ("skirt", (260, 230), [
        (0.18, 0.0), (0.82, 0.0), (1.0, 0.94), (0.75, 0.99), (0.5, 1.0), (0.25, 0.99), (0.0, 0.94)],
        [(0.2, 0.03), (0.8, 0.03)]),
    "长裤": ("trousers", (220, 440), [
        (0.04, 0.0), (0.96, 0.0), (1.0, 1.0), (0.56, 1.0), (0.5, 0.30), (0.44, 1.0), (0.0, 1.0)],
        [(0.08, 0.02), (0.92, 0.02)]),
    "短外套": ("jacket", (320, 280), [
        (0.36, 0.0), (0.5, 0.10), (0.64, 0.0), (0.82, 0.05), (1.0, 0.88), (0.88, 0.93), (0.80, 0.34),
        (0.81, 1.0), (0.19, 1.0), (0.20, 0.34), (0.12, 0.93), (0.0, 0.88), (0.18, 0.05)],
        [(0.2, 0.06), (0.8, 0.06)]),
}

# Base colours, (name, RGB), spread over hue and lightness so that products differ at a glance.
_PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("Red", (200, 35, 45)), ("Navy", (30, 45, 110)), ("Mustard", (215, 170, 40)),
    ("Green", (40, 140, 70)), ("Pink", (240, 140, 175)), ("Black", (35, 35, 38)),
    ("Orange", (240, 120, 30)), ("Purple", (120, 60, 160)), ("Teal", (20, 140, 150)),
    ("Sky-blue", (120, 180, 230)), ("Brown", (120, 75, 45)), ("Cream", (235, 228, 205)),
)
_ACCENTS: tuple[tuple[int, int, int], ...] = ((248, 248, 244), (25, 25, 30)) + tuple(c for _, c in _PALETTE)
_PATTERNS = ("striped", "polka-dot", "checked", "logo", "gradient", "colour-block")
MAX_PRODUCTS = 3 * len(_PALETTE)  # (colour, pattern) stays unique up to here

_SKIN = ((150, 180, 225), (120, 160, 210), (95, 130, 180))  # BGR
_CLOTHES = ((35, 35, 35), (235, 235, 235), (150, 150, 150), (170, 200, 220))  # the presenter's own top, BGR


@dataclass(frozen=True)
class _Product:
    """How one catalogue product looks: category, colours (BGR) and pattern."""

    item_id: str
    category: str
    name: str
    colour: tuple[int, int, int]
    accent: tuple[int, int, int]
    pattern: str
    angle: float  # degrees, for stripes, gradients and colour blocks
    period: float  # pattern repeat in sprite pixels
    mark: str  # the letters of a logo


@dataclass(frozen=True)
class _Sprite:
    """A product drawn once at full resolution, then warped into every image and frame."""

    image: np.ndarray  # h x w x 3 uint8, BGR
    alpha: np.ndarray  # h x w float32 in [0, 1]
    outline: np.ndarray  # n x 2 float32, polygon vertices in sprite pixels
    grips: np.ndarray  # 2 x 2 float32, where hands hold it

    @property
    def centre(self) -> tuple[float, float]:
        h, w = self.alpha.shape
        return w / 2.0, h / 2.0


def _bgr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return rgb[2], rgb[1], rgb[0]


def _luma(bgr: tuple[int, int, int]) -> float:
    return (0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]) / 255.0


def _plan_products(n: int, seed: int) -> list[_Product]:
    """Assign each product a category, colour and pattern; the first six cover six different categories."""
    rng = np.random.default_rng([seed, 0])
    colours = rng.permutation(len(_PALETTE))
    categories = [list(DEMO_CATEGORIES)[k] for k in rng.permutation(len(DEMO_CATEGORIES))]
    patterns = [_PATTERNS[k] for k in rng.permutation(len(_PATTERNS))]
    products = []
    for i in range(n):
        prng = np.random.default_rng([seed, 1, i])
        colour_name, rgb = _PALETTE[colours[i % len(_PALETTE)]]
        colour = _bgr(rgb)
        category = categories[i % len(categories)]
        pattern = patterns[(i + i // len(categories)) % len(patterns)]
        contrasting = [a for a in _ACCENTS if abs(_luma(a) - _luma(colour)) > 0.35]
        accent = contrasting[int(prng.integers(len(contrasting)))]
        letters = "".join(prng.choice(list("ABDEHKLMNRSTVXZ"), size=2))
        name = f"{colour_name} {pattern} {_SHAPES[category][0]}"
        products.append(_Product(
            item_id=str(FIRST_ITEM_ID + i), category=category, name=name, colour=colour, accent=accent,
            pattern=pattern, angle=float(prng.uniform(-60, 60)), period=float(prng.uniform(26, 40)),
            mark=letters))
    return products


def _pattern(p: _Product, w: int, h: int) -> np.ndarray:
    """The product's fabric over the whole canvas, as h x w x 3 float32."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = math.radians(p.angle)
    u = xx * math.cos(a) + yy * math.sin(a)
    q = p.period
    if p.pattern == "striped":
        t = (np.mod(u, q) < 0.4 * q).astype(np.float32)
    elif p.pattern == "polka-dot":
        xs = xx + (np.floor(yy / q) % 2) * q / 2
        t = (np.hypot(np.mod(xs, q) - q / 2, np.mod(yy, q) - q / 2) < 0.27 * q).astype(np.float32)
    elif p.pattern == "checked":
        t = 0.45 * ((np.mod(xx, q) < q / 2).astype(np.float32) + (np.mod(yy, q) < q / 2))
    elif p.pattern == "gradient":
        t = (u - u.min()) / max(float(np.ptp(u)), 1.0)
    elif p.pattern == "colour-block":
        t = (u > float(np.median(u))).astype(np.float32)
    else:  # logo: plain fabric, the emblem is drawn later
        t = np.zeros((h, w), np.float32)
    colour, accent = np.float32(p.colour), np.float32(p.accent)
    return colour * (1 - t[..., None]) + accent * t[..., None]


def _render_sprite(p: _Product) -> _Sprite:
    """Draw a product: fabric, folds, emblem, seams and outline, cut out by its silhouette."""
    _, (w, h), unit, grips = _SHAPES[p.category]
    scale = np.float32([w - 1, h - 1])
    outline = np.float32(unit) * scale
    folds = 1.0 - 0.07 * (0.5 + 0.5 * np.cos(2 * np.pi * np.arange(w, dtype=np.float32) / (w / 3.2) + 1.0))
    img = _to_uint8(_pattern(p, w, h) * folds[None, :, None])  # OpenCV draws text on 8-bit images only
    dark = tuple(c * 0.55 for c in p.colour)
    aa = cv2.LINE_AA
    if p.pattern == "logo":
        _draw_emblem(img, p, {"长裤": (0.3, 0.22), "短裙": (0.5, 0.45)}.get(p.category, (0.5, 0.3)))
    if p.category in ("短袖上衣", "长袖上衣", "短袖连衣裙"):  # neckline
        cv2.ellipse(img, (w // 2, 0), (int(0.12 * w), int(min(0.07 * h, 20))), 0, 0, 180, dark, 4, aa)
    if p.category == "短外套":  # front opening, lapels and buttons
        cv2.line(img, (w // 2, int(0.1 * h)), (w // 2, h), dark, 3, aa)
        for side in (-1, 1):
            cv2.line(img, (w // 2 + side * int(0.14 * w), 0), (w // 2, int(0.4 * h)), dark, 3, aa)
        for k in range(3):
            cv2.circle(img, (w // 2 + 8, int((0.5 + 0.15 * k) * h)), 5, dark, -1, aa)
    if p.category in ("短裙", "长裤"):  # waistband
        cv2.line(img, (0, int(0.07 * h)), (w, int(0.07 * h)), dark, 3, aa)
    if p.category == "长裤":  # fly
        cv2.line(img, (w // 2, int(0.07 * h)), (w // 2, int(0.25 * h)), dark, 2, aa)
    pts = outline.astype(np.int32)
    cv2.polylines(img, [pts], True, dark, 4, aa)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts], 255, aa)
    return _Sprite(image=img, alpha=mask.astype(np.float32) / 255.0, outline=outline,
                   grips=np.float32(grips) * scale)


def _draw_emblem(img: np.ndarray, p: _Product, at: tuple[float, float]) -> None:
    """A round badge in the accent colour with the product's two letters, at ``at`` (unit coordinates)."""
    h, w = img.shape[:2]
    cx, cy, r = at[0] * w, at[1] * h, int(0.15 * w)
    cv2.circle(img, (int(cx), int(cy)), r, p.accent, -1, cv2.LINE_AA)
    (tw, th), _ = cv2.getTextSize(p.mark, cv2.FONT_HERSHEY_DUPLEX, 1.0, 3)
    fs = 1.2 * r / tw
    org = (int(cx - tw * fs / 2), int(cy + th * fs / 2))
    cv2.putText(img, p.mark, org, cv2.FONT_HERSHEY_DUPLEX, fs, p.colour, 3, cv2.LINE_AA)


def _similarity(centre: tuple[float, float], angle: float, scale: float, src: tuple[float, float]) -> np.ndarray:
    """A 2x3 matrix mapping ``src`` to ``centre``, rotated by ``angle`` degrees and scaled by ``scale``."""
    m = cv2.getRotationMatrix2D(src, angle, scale)
    m[:, 2] += np.float64(centre) - np.float64(src)
    return m


def _then(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Compose two 2x3 affine maps: apply ``first``, then ``second``."""
    return (np.vstack([second, [0, 0, 1]]) @ np.vstack([first, [0, 0, 1]]))[:2]


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _paste(canvas: np.ndarray, sprite: _Sprite, m: np.ndarray) -> None:
    """Composite ``sprite`` onto the uint8 ``canvas`` in place, under the affine map ``m``."""
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = _box(m, sprite.outline, w, h)
    x0, y0, x1, y1 = max(x0 - 2, 0), max(y0 - 2, 0), min(x1 + 3, w), min(y1 + 3, h)
    if x1 <= x0 or y1 <= y0:
        return
    local = m - np.float64([[0, 0, x0], [0, 0, y0]])  # warp only the region the product covers
    img = cv2.warpAffine(sprite.image, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    a = cv2.warpAffine(sprite.alpha, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)[..., None]
    roi = canvas[y0:y1, x0:x1]
    roi[:] = _to_uint8(roi * (1 - a) + img * a)


def _box(m: np.ndarray, outline: np.ndarray, w: int, h: int) -> list[int]:
    """The tight box [x0, y0, x1, y1] of an outline under ``m``, clipped to a w x h image."""
    pts = _apply(m, outline)
    lo, hi = np.floor(pts.min(axis=0)), np.ceil(pts.max(axis=0))
    return [int(np.clip(lo[0], 0, w - 1)), int(np.clip(lo[1], 0, h - 1)),
            int(np.clip(hi[0], 0, w - 1)), int(np.clip(hi[1], 0, h - 1))]


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))


def _colour(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float, float]:
    b, g, r = rng.uniform(lo, hi, 3)
    return float(b), float(g), float(r)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _shop_image(sprite: _Sprite, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """A catalogue photo: the product centred on a light studio background, with a soft shadow."""
    s = SHOP_SIZE
    tone = rng.uniform(222, 250) + np.float32(rng.uniform(-6, 6, 3))
    ramp = np.linspace(1.02, 0.94, s, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(np.float32(tone) * ramp, (s, s, 3)).copy()
    h, w = sprite.alpha.shape
    scale = rng.uniform(0.7, 1.0) * 0.82 * s / max(w, h)
    centre = (s / 2 + rng.uniform(-8, 8), s / 2 + rng.uniform(-8, 8))
    m = _similarity(centre, rng.uniform(-8, 8), scale, sprite.centre)
    shadow = cv2.warpAffine(sprite.alpha, m + np.float64([[0, 0, 6], [0, 0, 8]]), (s, s))
    img = _to_uint8(img * (1 - 0.25 * cv2.GaussianBlur(shadow, (0, 0), 6)[..., None]))
    _paste(img, sprite, m)
    img = img * np.float32(rng.uniform(0.88, 1.12)) + rng.normal(0, 2.0, img.shape).astype(np.float32)
    return _to_uint8(img), _box(m, sprite.outline, s, s)


@dataclass(frozen=True)
class _Stage:
    """A clip's static scene: the room and the presenter, in world pixels (the frame plus a margin)."""

    image: np.ndarray  # uint8 BGR
    shoulders: np.ndarray  # 2 x 2, where the presenter's arms start
    anchor: tuple[float, float]  # where the held product's centre rests
    skin: tuple[int, int, int]
    sleeve: tuple[int, int, int]


def _room(ww: int, wh: int, rng: np.random.Generator) -> np.ndarray:
    """A shop-studio backdrop: painted walls, a floor, ceiling lights, a shelf unit and a clothes rail."""
    wall = np.float32(rng.uniform(165, 230) + rng.uniform(-15, 15, 3))  # near-neutral paint
    blotches = rng.normal(0, 6, (wh // 16 + 1, ww // 16 + 1)).astype(np.float32)
    texture = cv2.resize(blotches, (ww, wh), interpolation=cv2.INTER_CUBIC)[..., None]
    img = _to_uint8(wall * np.linspace(1.05, 0.9, wh, dtype=np.float32)[:, None, None] + texture)
    side = int(rng.integers(2))  # which side the shelves stand on; the rail is on the other
    flip = (lambda x: ww - 1 - x) if side else (lambda x: x)
    panel = [(0, 0), (0.18 * ww, 0.06 * wh), (0.18 * ww, 0.8 * wh), (0, 0.9 * wh)]
    cv2.fillPoly(img, [np.int32([_pt(flip(x), y) for x, y in panel])], tuple(float(c) * 0.8 for c in wall))
    tint = ((0.65, 0.8, 1.0), (1.0, 1.0, 1.0))[int(rng.integers(2))]  # wood or stone
    floor, floor_y = tuple(c * rng.uniform(80, 160) for c in tint), int(0.82 * wh)
    cv2.rectangle(img, (0, floor_y), (ww, wh), floor, -1)
    for x in range(0, ww, 24):
        cv2.line(img, (x, floor_y), (x + (x - ww // 2) // 2, wh), tuple(c * 0.85 for c in floor), 1, cv2.LINE_AA)
    for k in range(3):
        cv2.circle(img, _pt((0.2 + 0.3 * k) * ww, 0.03 * wh), 6, (250, 250, 250), -1, cv2.LINE_AA)
    shelf_x, plank = (int(0.02 * ww) if side else int(0.7 * ww)), _colour(rng, 60, 200)
    for k in range(4):
        y = int((0.25 + 0.16 * k) * wh)
        cv2.rectangle(img, (shelf_x, y), (shelf_x + int(0.28 * ww), y + 6), plank, -1)
        for j in range(3):
            bx, bw, bh = shelf_x + 4 + j * int(0.09 * ww), int(rng.integers(12, 26)), int(rng.integers(14, 40))
            cv2.rectangle(img, (bx, y - bh), (bx + bw, y), _colour(rng, 30, 240), -1)
    rail_x, rail_y = (int(0.68 * ww) if side else int(0.02 * ww)), int(0.2 * wh)
    cv2.line(img, (rail_x, rail_y), (rail_x + int(0.3 * ww), rail_y), (90, 90, 90), 3, cv2.LINE_AA)
    for j in range(5):
        hx = rail_x + 6 + j * int(0.055 * ww)
        cv2.rectangle(img, (hx, rail_y + 4), (hx + int(0.05 * ww), rail_y + int(0.28 * wh)), _colour(rng, 30, 240), -1)
    return img


def _stage(width: int, height: int, margin: int, held: tuple[float, float], rng: np.random.Generator) -> _Stage:
    """A room with a presenter in it: legs, torso, neck, hair, face; ``held`` is the product's (w, h)."""
    ww, wh = width + 2 * margin, height + 2 * margin
    img = _room(ww, wh, rng)
    skin = _SKIN[int(rng.integers(len(_SKIN)))]
    sleeve = _CLOTHES[int(rng.integers(len(_CLOTHES)))]
    hair, aa = (30, 30, 40), cv2.LINE_AA
    cx = ww / 2 + rng.uniform(-0.03, 0.03) * width
    top = margin + 0.24 * height  # the held product starts here, just under the chin
    head, (ax, ay) = _pt(cx, top - 0.09 * height), (0.085 * width, 0.065 * height)
    shoulder_y = top + 0.03 * height

    def trapezoid(y0: float, half0: float, y1: float, half1: float) -> np.ndarray:
        return np.int32([_pt(cx - half0, y0), _pt(cx + half0, y0), _pt(cx + half1, y1), _pt(cx - half1, y1)])

    cv2.fillPoly(img, [trapezoid(0.6 * wh, 0.1 * width, wh, 0.14 * width)], (90, 60, 40), aa)  # jeans
    cv2.ellipse(img, _pt(head[0], head[1] + 0.06 * height), _pt(1.25 * ax, 1.5 * ay), 0, 180, 360, hair, -1, aa)
    cv2.fillPoly(img, [trapezoid(shoulder_y, 0.26 * width, 0.62 * wh, 0.2 * width)], sleeve, aa)  # own top
    cv2.rectangle(img, _pt(cx - 0.04 * width, head[1]), _pt(cx + 0.04 * width, shoulder_y), skin, -1)  # neck
    cv2.ellipse(img, _pt(head[0], head[1] - 0.02 * height), _pt(1.15 * ax, 1.05 * ay), 0, 0, 360, hair, -1, aa)
    cv2.ellipse(img, head, _pt(ax, ay), 0, 0, 360, skin, -1, aa)
    for side in (-1, 1):
        cv2.circle(img, _pt(cx + side * 0.35 * ax, head[1] - 2), 2, (30, 30, 30), -1, aa)
    cv2.ellipse(img, _pt(head[0], head[1] + 0.45 * ay), _pt(0.3 * ax, 3), 0, 0, 180, (60, 60, 170), 2, aa)
    cy = min(top + held[1] / 2, margin + 0.97 * height - held[1] / 2)
    shoulders = np.float32([[cx - 0.24 * width, shoulder_y], [cx + 0.24 * width, shoulder_y]])
    return _Stage(image=img, shoulders=shoulders, anchor=(cx, cy), skin=skin, sleeve=sleeve)


_Wave = tuple[float, float, float]


def _wave(rng: np.random.Generator, amplitude: float, cycles: tuple[float, float]) -> _Wave:
    """A random slow sinusoid: (amplitude, cycles per unit of time, phase)."""
    return amplitude, float(rng.uniform(*cycles)), float(rng.uniform(0, 2 * np.pi))


def _at(wave: _Wave, x: float) -> float:
    a, f, ph = wave
    return a * math.sin(2 * math.pi * f * x + ph)


@dataclass(frozen=True)
class _Motion:
    """A clip's random script: camera, light, sway and when the occluders pass."""

    zoom: _Wave
    pan: tuple[_Wave, _Wave]
    light: _Wave
    warmth: _Wave
    sway: _Wave  # degrees
    sway_at: tuple[_Wave, _Wave]
    arm_at: float  # clip fraction where an arm starts to cross the product
    arm_from: tuple[float, float]  # where that arm comes from, in world fractions
    sign_at: float  # clip fraction where a price card starts to slide across
    price: str

    @staticmethod
    def draw(rng: np.random.Generator, width: int, height: int) -> _Motion:
        arm_first = bool(rng.integers(2))
        return _Motion(
            zoom=_wave(rng, 0.06, (0.4, 0.7)),
            pan=(_wave(rng, 0.04 * width, (0.3, 0.8)), _wave(rng, 0.02 * height, (0.3, 0.8))),
            light=_wave(rng, 0.12, (0.5, 1.0)), warmth=_wave(rng, 0.08, (0.3, 0.6)),
            sway=_wave(rng, 4.0, (0.4, 0.7)),
            sway_at=(_wave(rng, 0.025 * width, (0.3, 0.5)), _wave(rng, 0.01 * height, (0.5, 0.9))),
            arm_at=0.15 if arm_first else 0.6, sign_at=0.6 if arm_first else 0.15,
            arm_from=(float(rng.integers(2)), float(rng.uniform(0.6, 1.0))),
            price=f"-{int(rng.integers(2, 6)) * 10}%")


_OCCLUDE_FOR = 0.22  # clip fraction each occluder is in view


def _draw_occluders(img: np.ndarray, mo: _Motion, x: float, g: np.ndarray, sprite: _Sprite, stage: _Stage) -> None:
    """In their windows, an arm reaches across the product and a price card slides over its lower part."""
    sh, sw = sprite.alpha.shape
    width = img.shape[1]
    if mo.arm_at <= x < mo.arm_at + _OCCLUDE_FOR:
        k = (x - mo.arm_at) / _OCCLUDE_FOR
        tip = _apply(g, np.float32([[sw * (0.25 + 0.5 * k), sh * 0.55]]))[0]
        start = _pt(mo.arm_from[0] * img.shape[1], mo.arm_from[1] * img.shape[0])
        cv2.line(img, start, _pt(*tip), stage.skin, int(0.06 * width), cv2.LINE_AA)
    if mo.sign_at <= x < mo.sign_at + _OCCLUDE_FOR:
        k = (x - mo.sign_at) / _OCCLUDE_FOR
        bottom = _apply(g, sprite.outline)[:, 1].max()
        cw, ch = int(0.32 * width), int(0.1 * img.shape[0])
        x0, y0 = int(-cw + k * (width + cw)), int(stage.anchor[1] + 0.45 * (bottom - stage.anchor[1]))
        cv2.rectangle(img, (x0, y0), (x0 + cw, y0 + ch), (245, 245, 245), -1)
        cv2.rectangle(img, (x0, y0), (x0 + cw, y0 + ch), (40, 40, 200), 3)
        cv2.putText(img, mo.price, (x0 + 8, y0 + int(0.75 * ch)), cv2.FONT_HERSHEY_DUPLEX, ch / 40,
                    (40, 40, 200), 2, cv2.LINE_AA)


def _clip_frames(sprite: _Sprite, size: tuple[int, int], n: int,
                 rng: np.random.Generator) -> Iterator[tuple[np.ndarray, list[int]]]:
    """Yield (frame BGR uint8, product box) for a presenter holding up ``sprite`` under a moving camera."""
    width, height = size
    margin = int(0.12 * max(width, height))
    sh, sw = sprite.alpha.shape
    target = rng.uniform(0.40, 0.46) * width * height  # the product's box area at zoom 1
    scale = min(math.sqrt(target / (sw * sh)), 0.92 * width / sw, 0.72 * height / sh)
    stage = _stage(width, height, margin, (sw * scale, sh * scale), rng)
    world_centre = (stage.image.shape[1] / 2, stage.image.shape[0] / 2)
    mo = _Motion.draw(rng, width, height)
    noise = [rng.standard_normal((height, width, 3), dtype=np.float32) * 3.0 for _ in range(6)]
    for i in range(n):
        x, sec = i / max(n - 1, 1), i / FPS  # camera and light drift over the clip; the product sways in time
        centre = (stage.anchor[0] + _at(mo.sway_at[0], sec), stage.anchor[1] + _at(mo.sway_at[1], sec))
        g = _similarity(centre, _at(mo.sway, sec), scale, sprite.centre)
        img = stage.image.copy()
        _paste(img, sprite, g)
        for shoulder, grip in zip(stage.shoulders, _apply(g, sprite.grips)):  # arms up to the hands holding it
            cv2.line(img, _pt(*shoulder), _pt(*grip), stage.sleeve, int(0.06 * width), cv2.LINE_AA)
            cv2.ellipse(img, _pt(*grip), _pt(0.035 * width, 0.025 * width), 0, 0, 360, stage.skin, -1, cv2.LINE_AA)
        _draw_occluders(img, mo, x, g, sprite, stage)
        view = (width / 2 + _at(mo.pan[0], x), height / 2 + _at(mo.pan[1], x))
        cam = _similarity(view, 0.0, 1.0 + _at(mo.zoom, x), world_centre)
        frame = cv2.warpAffine(img, cam, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        t, b = _at(mo.warmth, x), 1.0 + _at(mo.light, x)
        frame = cv2.transform(frame, np.diag(np.float32([b * (1 - t), b, b * (1 + t)])))  # exposure, white balance
        _overlay(frame)
        frame = cv2.add(cv2.GaussianBlur(frame, (3, 3), 0.7), noise[int(rng.integers(len(noise)))], dtype=cv2.CV_8U)
        yield frame, _box(_then(cam, g), sprite.outline, width, height)


def _overlay(frame: np.ndarray) -> None:
    """Screen-space livestream furniture: a LIVE badge and a viewer count, drawn in place."""
    h, w = frame.shape[:2]
    bw, bh = int(0.16 * w), int(0.035 * h)
    cv2.rectangle(frame, (6, 6), (6 + bw, 6 + bh), (60, 40, 220), -1)
    cv2.putText(frame, "LIVE", (10, 4 + bh), cv2.FONT_HERSHEY_SIMPLEX, bh / 30, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(frame, "1.2w", (12 + bw, 4 + bh), cv2.FONT_HERSHEY_SIMPLEX, bh / 34, (255, 255, 255), 1, cv2.LINE_AA)


def _write_clip(path: Path, frames: Iterator[tuple[np.ndarray, list[int]]], size: tuple[int, int],
                n: int) -> list[list[int]]:
    """Encode frames to an mp4 (mp4v), check it reads back with ``n`` frames, and return every frame's box."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
    if not writer.isOpened():
        raise EngineError(f"OpenCV cannot write mp4 video to {path}")
    boxes = []
    try:
        for frame, box in frames:
            writer.write(frame)
            boxes.append(box)
    finally:
        writer.release()
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    if count != n:
        raise EngineError(f"demo clip {path.name} reads back with {count} frames, expected {n}")
    return boxes


def _annotation(box: list[int], p: _Product) -> dict[str, Any]:
    return {"box": box, "label": p.category, "instance_id": int(p.item_id) * 100 + 1, "viewpoint": 0, "display": 1}


def _write_json(path: Path, obj: Any, **kwargs: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, **kwargs), encoding="utf-8")


def _build(out: Path, params: dict[str, Any]) -> None:
    """Write the whole dataset under ``out``, which exists and is empty; demo.json comes last."""
    seed, size, n_frames = params["seed"], tuple(params["frame_size"]), params["frames_per_clip"]
    products = _plan_products(params["n_products"], seed)
    sprites = [_render_sprite(p) for p in products]
    for i, (p, sprite) in enumerate(zip(products, sprites)):
        rng = np.random.default_rng([seed, 2, i])
        (out / "image" / p.item_id).mkdir(parents=True)
        for k in range(SHOP_IMAGES_PER_PRODUCT):
            img, box = _shop_image(sprite, rng)
            cv2.imwrite(str(out / "image" / p.item_id / f"{k}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            _write_json(out / "image_annotation" / p.item_id / f"{k}.json",
                        {"item_id": p.item_id, "img_name": f"{k}.jpg", "annotations": [_annotation(box, p)]})
    (out / "video").mkdir()
    (out / "video_annotation").mkdir()
    for i, p in enumerate(products[: params["n_clips"]]):
        frames = _clip_frames(sprites[i], size, n_frames, np.random.default_rng([seed, 3, i]))
        boxes = _write_clip(out / "video" / f"{p.item_id}.mp4", frames, size, n_frames)
        annotated = [{"frame_index": f, "annotations": [_annotation(boxes[f], p)]}
                     for f in range(0, n_frames, ANNOTATE_EVERY)]
        _write_json(out / "video_annotation" / f"{p.item_id}.json", {"video_id": p.item_id, "frames": annotated})
    _write_json(out / "demo.json", {
        "version": DEMO_VERSION, "seed": seed, "params": params,
        "products": {p.item_id: {"name": p.name, "category": p.category} for p in products},
        "clips": {p.item_id: p.item_id for p in products[: params["n_clips"]]},
    }, ensure_ascii=False, indent=1)


def _is_current(out: Path, params: dict[str, Any]) -> bool:
    """True if ``out`` holds a finished demo made by this version with these parameters."""
    try:
        meta = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("version") == DEMO_VERSION and meta.get("params") == params


def generate_demo(out_dir: str | Path, n_products: int = 8, n_clips: int = 4, seed: int = 0,
                  frames_per_clip: int = 60, frame_size: tuple[int, int] = (270, 480)) -> Path:
    """Write the demo dataset to ``out_dir`` and return it.

    ``frame_size`` is (width, height), portrait like real livestreams (540x960); both must be even. Clip ``i``
    shows product ``i``, and its video_id is that product's item_id. A finished demo with the same parameters
    is left as it is; one with other parameters is replaced. The dataset is built in a temporary sibling folder
    and renamed into place, so ``out_dir`` never holds half a demo. A non-empty folder that is not a demo is
    never overwritten (``FileExistsError``).
    """
    out = Path(out_dir).expanduser()
    width, height = (int(v) for v in frame_size)
    if not 1 <= n_products <= MAX_PRODUCTS:
        raise ValueError(f"n_products must be between 1 and {MAX_PRODUCTS}, got {n_products}")
    if not 0 <= n_clips <= n_products:
        raise ValueError(f"n_clips must be between 0 and n_products ({n_products}), got {n_clips}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if frames_per_clip < 1:
        raise ValueError(f"frames_per_clip must be at least 1, got {frames_per_clip}")
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ValueError(f"frame_size must be even and at least 64x64, got {width}x{height}")
    params = {"n_products": int(n_products), "n_clips": int(n_clips), "seed": int(seed),
              "frames_per_clip": int(frames_per_clip), "frame_size": [width, height], "fps": FPS}
    if _is_current(out, params):
        return out
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the demo is ordinary data
        _build(tmp, params)
        if not _is_current(out, params):  # else another process finished the same demo first
            _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _install(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, moving an earlier demo (or empty folder) out of the way first."""
    _check_replaceable(out)
    if not out.exists():
        os.replace(tmp, out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, trash / out.name)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(trash / out.name, out)  # put the old demo back rather than leave nothing
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _check_replaceable(out: Path) -> None:
    """Refuse to replace anything but a missing or empty folder or an earlier demo."""
    if out.exists() and not (out.is_dir() and ((out / "demo.json").is_file() or not any(out.iterdir()))):
        raise FileExistsError(f"{out} exists and is not a livematch demo; not overwriting it")


def default_demo_dir() -> Path:
    """Where the app keeps its demo: ``$LIVEMATCH_DEMO_DIR``, else ``<livematch home>/demo``."""
    from .config import Settings

    env = os.environ.get("LIVEMATCH_DEMO_DIR")
    return Path(env).expanduser() if env else Settings().home / "demo"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the built-in demo dataset.")
    parser.add_argument("out_dir", nargs="?", type=Path, default=default_demo_dir())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(generate_demo(args.out_dir, seed=args.seed))
