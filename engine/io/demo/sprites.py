"""The demo's products: their look, their sprites, the drawing helpers, and catalogue (shop) photos.

Each product is drawn once as a sprite at full resolution; shop images and clip frames warp that sprite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engine.categories import CATEGORY_EN

SHOP_SIZE = 320
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
_PATTERNS = ("striped", "polka-dot", "checked", "logo", "gradient", "colour-block", "zigzag", "argyle")
MAX_PRODUCTS = 3 * len(_PALETTE)  # (colour, pattern) stays unique up to here


@dataclass(frozen=True)
class DemoProduct:
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
class Sprite:
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


def plan_products(n: int, seed: int) -> list[DemoProduct]:
    """Assign each product a category, colour and pattern: the first six cover six different categories, the first
    eight eight different patterns, and no two share a colour."""
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
        pattern = patterns[(i + i // len(patterns)) % len(patterns)]
        contrasting = [a for a in _ACCENTS if abs(_luma(a) - _luma(colour)) > 0.35]
        accent = contrasting[int(prng.integers(len(contrasting)))]
        letters = "".join(prng.choice(list("ABDEHKLMNRSTVXZ"), size=2))
        name = f"{colour_name} {pattern} {_SHAPES[category][0]}"
        products.append(DemoProduct(
            item_id=str(FIRST_ITEM_ID + i), category=category, name=name, colour=colour, accent=accent,
            pattern=pattern, angle=float(prng.uniform(-60, 60)), period=float(prng.uniform(26, 40)),
            mark=letters))
    return products


def absent_product(planned: DemoProduct, catalogue: list[DemoProduct]) -> DemoProduct:
    """A product the shop does not sell, for a demo clip whose right answer is "not in the catalogue": plain fabric
    (no catalogue product is plain) in the palette's colour farthest from every catalogue product's colour. Drawn
    as ``planned`` would be otherwise (its kind, id and seed). The planned one could share a pattern and a near
    colour with a catalogue product (an orange striped skirt beside a mustard striped top: called confidently the
    top, docs/accuracy.md); the demo shows the outcome for a product that is plainly not there."""
    used = {_bgr(rgb) for _, rgb in _PALETTE} & {p.colour for p in catalogue}

    def distance(rgb: tuple[int, int, int]) -> float:
        return min((float(np.linalg.norm(np.float32(_bgr(rgb)) - np.float32(c))) for c in used), default=0.0)

    name, rgb = max((c for c in _PALETTE if _bgr(c[1]) not in used), key=lambda c: distance(c[1]))
    return DemoProduct(planned.item_id, planned.category, f"{name} plain {_SHAPES[planned.category][0]}",
                       _bgr(rgb), planned.accent, "plain", planned.angle, planned.period, planned.mark)


def _pattern(p: DemoProduct, w: int, h: int) -> np.ndarray:
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
    elif p.pattern == "zigzag":
        v = -xx * math.sin(a) + yy * math.cos(a)
        t = (np.mod(u + 0.6 * np.abs(np.mod(v, q) - q / 2), q) < 0.4 * q).astype(np.float32)
    elif p.pattern == "argyle":
        t = (np.abs(np.mod(xx, q) - q / 2) + np.abs(np.mod(yy, 1.4 * q) - 0.7 * q) < 0.32 * q).astype(np.float32)
    elif p.pattern == "colour-block":
        t = (u > float(np.median(u))).astype(np.float32)
    else:  # logo (the emblem is drawn later) and plain: plain fabric
        t = np.zeros((h, w), np.float32)
    colour, accent = np.float32(p.colour), np.float32(p.accent)
    return colour * (1 - t[..., None]) + accent * t[..., None]


def render_sprite(p: DemoProduct) -> Sprite:
    """Draw a product: fabric, folds, emblem, seams and outline, cut out by its silhouette."""
    _, (w, h), unit, grips = _SHAPES[p.category]
    scale = np.float32([w - 1, h - 1])
    outline = np.float32(unit) * scale
    folds = 1.0 - 0.07 * (0.5 + 0.5 * np.cos(2 * np.pi * np.arange(w, dtype=np.float32) / (w / 3.2) + 1.0))
    img = to_uint8(_pattern(p, w, h) * folds[None, :, None])  # OpenCV draws text on 8-bit images only
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
    return Sprite(image=img, alpha=mask.astype(np.float32) / 255.0, outline=outline,
                   grips=np.float32(grips) * scale)


def _draw_emblem(img: np.ndarray, p: DemoProduct, at: tuple[float, float]) -> None:
    """A round badge in the accent colour with the product's two letters, at ``at`` (unit coordinates)."""
    h, w = img.shape[:2]
    cx, cy, r = at[0] * w, at[1] * h, int(0.15 * w)
    cv2.circle(img, (int(cx), int(cy)), r, p.accent, -1, cv2.LINE_AA)
    (tw, th), _ = cv2.getTextSize(p.mark, cv2.FONT_HERSHEY_DUPLEX, 1.0, 3)
    fs = 1.2 * r / tw
    org = (int(cx - tw * fs / 2), int(cy + th * fs / 2))
    cv2.putText(img, p.mark, org, cv2.FONT_HERSHEY_DUPLEX, fs, p.colour, 3, cv2.LINE_AA)


def similarity_transform(centre: tuple[float, float], angle: float, scale: float,
                         src: tuple[float, float]) -> np.ndarray:
    """A 2x3 matrix mapping ``src`` to ``centre``, rotated by ``angle`` degrees and scaled by ``scale``."""
    m = cv2.getRotationMatrix2D(src, angle, scale)
    m[:, 2] += np.float64(centre) - np.float64(src)
    return m


def compose(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Compose two 2x3 affine maps: apply ``first``, then ``second``."""
    return (np.vstack([second, [0, 0, 1]]) @ np.vstack([first, [0, 0, 1]]))[:2]


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (n x 2) under the 2x3 affine map ``m``."""
    return pts @ m[:, :2].T + m[:, 2]


def paste(canvas: np.ndarray, sprite: Sprite, m: np.ndarray) -> None:
    """Composite ``sprite`` onto the uint8 ``canvas`` in place, under the affine map ``m``."""
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = outline_box(m, sprite.outline, w, h)
    x0, y0, x1, y1 = max(x0 - 2, 0), max(y0 - 2, 0), min(x1 + 3, w), min(y1 + 3, h)
    if x1 <= x0 or y1 <= y0:
        return
    local = m - np.float64([[0, 0, x0], [0, 0, y0]])  # warp only the region the product covers
    img = cv2.warpAffine(sprite.image, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    a = cv2.warpAffine(sprite.alpha, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)[..., None]
    roi = canvas[y0:y1, x0:x1]
    roi[:] = to_uint8(roi * (1 - a) + img * a)


def outline_box(m: np.ndarray, outline: np.ndarray, w: int, h: int) -> list[int]:
    """The tight box [x0, y0, x1, y1] of an outline under ``m``, clipped to a w x h image."""
    pts = apply_affine(m, outline)
    lo, hi = np.floor(pts.min(axis=0)), np.ceil(pts.max(axis=0))
    return [int(np.clip(lo[0], 0, w - 1)), int(np.clip(lo[1], 0, h - 1)),
            int(np.clip(hi[0], 0, w - 1)), int(np.clip(hi[1], 0, h - 1))]


def point(x: float, y: float) -> tuple[int, int]:
    """A point rounded to whole pixels, as OpenCV's drawing functions take it."""
    return int(round(x)), int(round(y))


def random_colour(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float, float]:
    """A colour (B, G, R) with each channel drawn uniformly from [lo, hi)."""
    b, g, r = rng.uniform(lo, hi, 3)
    return float(b), float(g), float(r)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """A float image rounded and clipped to uint8."""
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def shop_image(sprite: Sprite, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """A catalogue photo: the product centred on a light studio background, with a soft shadow."""
    s = SHOP_SIZE
    tone = rng.uniform(222, 250) + np.float32(rng.uniform(-6, 6, 3))
    ramp = np.linspace(1.02, 0.94, s, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(np.float32(tone) * ramp, (s, s, 3)).copy()
    h, w = sprite.alpha.shape
    scale = rng.uniform(0.7, 1.0) * 0.82 * s / max(w, h)
    centre = (s / 2 + rng.uniform(-8, 8), s / 2 + rng.uniform(-8, 8))
    m = similarity_transform(centre, rng.uniform(-8, 8), scale, sprite.centre)
    shadow = cv2.warpAffine(sprite.alpha, m + np.float64([[0, 0, 6], [0, 0, 8]]), (s, s))
    img = to_uint8(img * (1 - 0.25 * cv2.GaussianBlur(shadow, (0, 0), 6)[..., None]))
    paste(img, sprite, m)
    img = img * np.float32(rng.uniform(0.88, 1.12)) + rng.normal(0, 2.0, img.shape).astype(np.float32)
    return to_uint8(img), outline_box(m, sprite.outline, s, s)
