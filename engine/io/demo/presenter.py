"""The demo's presenter: a standing figure wearing the product, drawn once per clip as a cut-out.

The figure has the proportions of a person (a head of hair, a face, a neck, shaded arms and legs, shoes), so that
the COCO person detector the pipeline starts with finds it (SSD-MobileNet-v2 scores such a figure about 0.9). The
product's own sprite is laid on the body where it is worn (a top over the torso, a skirt or trousers from the hips,
a dress from the shoulders), and a plain garment in a colour no product has completes the outfit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.io.demo.sprites import Sprite, apply_affine, paste, point, similarity_transform

_AA = cv2.LINE_AA
SKIN = ((150, 180, 225), (120, 160, 210), (95, 130, 180))  # BGR
HAIR = ((25, 25, 35), (30, 55, 95), (20, 20, 20))
# Plain garments that complete the outfit: denim, light grey, off-white (no product has these colours).
PLAIN_BOTTOMS = ((110, 80, 55), (70, 70, 75))
PLAIN_TOPS = ((212, 212, 208), (185, 190, 196))

# Where each category's sprite sits on the body, in head units u: (top edge below the head's top, width).
_WORN: dict[str, tuple[float, float]] = {
    "短袖上衣": (1.40, 3.30), "长袖上衣": (1.40, 3.50), "短外套": (1.38, 3.10),
    "短袖连衣裙": (1.40, 3.00), "短裙": (3.60, 2.70), "长裤": (3.75, 2.00),
}
_TOPS = ("短袖上衣", "长袖上衣", "短外套")
_BOTTOMS = ("短裙", "长裤")
# Where hands come out of a top's or a dress's sleeves (unit coordinates of the sprite), left and right.
_CUFFS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "短袖上衣": ((0.07, 0.38), (0.93, 0.38)), "长袖上衣": ((0.05, 0.89), (0.95, 0.89)),
    "短外套": ((0.06, 0.91), (0.94, 0.91)), "短袖连衣裙": ((0.13, 0.22), (0.87, 0.22)),
}
UNITS_HIGH = 8.2  # the figure's height, head to shoes, in head units
UNITS_WIDE = 4.4


@dataclass(frozen=True)
class Presenter:
    """A dressed figure as a cut-out, and the worn product's outline in its pixels."""

    figure: Sprite  # the whole figure; its grips are unused
    product_outline: np.ndarray  # n x 2 float32


def _shade(img: np.ndarray, mask: np.ndarray, strength: float) -> None:
    """Darken a filled shape towards its left and right edges, as a lit cylinder."""
    xs = np.nonzero(mask.any(axis=0))[0]
    if len(xs) == 0:
        return
    mid, half = (xs[0] + xs[-1]) / 2, max((xs[-1] - xs[0]) / 2, 1)
    f = 1 - strength * np.minimum(np.abs((np.arange(img.shape[1], dtype=np.float32) - mid) / half), 1) ** 2
    m = mask > 0
    img[m] = np.clip(img[m] * np.broadcast_to(f, mask.shape)[m][:, None], 0, 255).astype(np.uint8)


def _fill(img: np.ndarray, alpha: np.ndarray, draw, colour: tuple[int, int, int], strength: float = 0.3) -> None:
    """Draw a shape with ``draw(mask)``, fill it with ``colour``, shade it, and add it to the figure's alpha."""
    mask = np.zeros(img.shape[:2], np.uint8)
    draw(mask)
    img[mask > 0] = colour
    if strength:
        _shade(img, mask, strength)
    np.maximum(alpha, mask.astype(np.float32) / 255, out=alpha)


def _limb(a: tuple[float, float], b: tuple[float, float], wa: float, wb: float):
    """A tapered limb from ``a`` to ``b`` with rounded ends, as a drawing function of a mask."""
    pa, pb = np.float32(a), np.float32(b)
    d = pb - pa
    n = np.float32([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-6)

    def draw(mask: np.ndarray) -> None:
        cv2.fillPoly(mask, [np.int32([pa + n * wa, pb + n * wb, pb - n * wb, pa - n * wa])], 255, _AA)
        cv2.circle(mask, point(*pa), int(wa), 255, -1, _AA)
        cv2.circle(mask, point(*pb), int(wb), 255, -1, _AA)
    return draw


def dress(product: Sprite, category: str, u: float, rng: np.random.Generator) -> Presenter:
    """A figure ``u`` pixels per head unit wearing ``product`` (a sprite of ``category``)."""
    w, h = int(UNITS_WIDE * u), int(UNITS_HIGH * u)
    img = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.float32)
    skin, hair = SKIN[int(rng.integers(len(SKIN)))], HAIR[int(rng.integers(len(HAIR)))]
    cx, y0 = w / 2, 0.05 * u
    shoulder, hip = y0 + 1.55 * u, y0 + 4.0 * u
    face = (cx, y0 + 0.55 * u)
    _fill(img, alpha, lambda m: cv2.ellipse(m, point(cx, y0 + 0.8 * u), point(0.52 * u, 0.9 * u), 0, 0, 360, 255, -1,
                                            _AA), hair, 0.2)  # hair, behind the head
    for s in (-1, 1):  # legs and shoes
        _fill(img, alpha, _limb((cx + s * 0.35 * u, hip), (cx + s * 0.42 * u, hip + 1.9 * u), 0.3 * u, 0.2 * u), skin)
        _fill(img, alpha, _limb((cx + s * 0.42 * u, hip + 1.9 * u), (cx + s * 0.45 * u, hip + 3.7 * u),
                                0.2 * u, 0.13 * u), skin)
        _fill(img, alpha, lambda m, s=s: cv2.ellipse(m, point(cx + s * 0.55 * u, hip + 3.8 * u),
                                                     point(0.25 * u, 0.1 * u), 0, 0, 360, 255, -1, _AA), (30, 30, 30), 0)
    if category not in _BOTTOMS:  # plain trousers under a top (a dress hides most of them)
        bottom = PLAIN_BOTTOMS[int(rng.integers(len(PLAIN_BOTTOMS)))]
        for s in (-1, 1):
            _fill(img, alpha, _limb((cx + s * 0.36 * u, hip), (cx + s * 0.44 * u, hip + 3.5 * u), 0.36 * u, 0.2 * u),
                  bottom)
    hands = [(cx - 1.12 * u, shoulder + 3.0 * u), (cx + 1.12 * u, shoulder + 3.0 * u)]
    if category not in _CUFFS:  # arms hanging beside a plain top
        top = PLAIN_TOPS[int(rng.integers(len(PLAIN_TOPS)))]
        for s, hand in zip((-1, 1), hands):
            _fill(img, alpha, _limb((cx + s * 0.85 * u, shoulder + 0.1 * u), hand, 0.2 * u, 0.12 * u), skin)
        _fill(img, alpha, lambda m: cv2.fillPoly(m, [np.int32([
            point(cx - 0.95 * u, shoulder), point(cx + 0.95 * u, shoulder), point(cx + 0.72 * u, hip + 0.2 * u),
            point(cx - 0.72 * u, hip + 0.2 * u)])], 255, _AA), top)
        for s in (-1, 1):
            _fill(img, alpha, _limb((cx + s * 0.8 * u, shoulder + 0.15 * u), (cx + s * 1.0 * u, shoulder + 0.9 * u),
                                    0.26 * u, 0.22 * u), top)
    _fill(img, alpha, _limb((cx, y0 + 0.9 * u), (cx, shoulder + 0.1 * u), 0.18 * u, 0.2 * u), skin)  # neck
    top_y, width = _WORN[category]
    sh, sw = product.alpha.shape
    scale = width * u / sw
    m = similarity_transform((cx, y0 + top_y * u + sh * scale / 2), 0.0, scale, product.centre)
    if category in _CUFFS:  # forearms and hands out of the sleeves, drawn under the garment
        cuffs = apply_affine(m, np.float32(_CUFFS[category]) * np.float32([sw, sh]))
        for cuff in cuffs:
            hand = (cuff[0] + np.sign(cuff[0] - cx) * 0.1 * u, max(cuff[1] + 0.9 * u, shoulder + 2.4 * u))
            _fill(img, alpha, _limb(tuple(cuff), hand, 0.17 * u, 0.12 * u), skin)
            _fill(img, alpha, lambda mk, hd=hand: cv2.ellipse(mk, point(*hd), point(0.13 * u, 0.2 * u), 0, 0, 360,
                                                               255, -1, _AA), skin)
    paste(img, product, m)
    worn = np.zeros((h, w), np.float32)
    worn[:] = cv2.warpAffine(product.alpha, m, (w, h), flags=cv2.INTER_LINEAR)
    np.maximum(alpha, worn, out=alpha)
    _face(img, alpha, face, u, skin, hair)
    return Presenter(figure=Sprite(image=img, alpha=alpha, outline=np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1],
                                                                               [0, h - 1]]),
                                   grips=np.zeros((2, 2), np.float32)),
                     product_outline=apply_affine(m, product.outline).astype(np.float32))


def _face(img: np.ndarray, alpha: np.ndarray, c: tuple[float, float], u: float, skin: tuple[int, int, int],
          hair: tuple[int, int, int]) -> None:
    """A face: skin, a fringe, eyes, brows, nose and mouth."""
    cx, cy = c
    _fill(img, alpha, lambda m: cv2.ellipse(m, point(cx, cy), point(0.38 * u, 0.5 * u), 0, 0, 360, 255, -1, _AA), skin)
    cv2.ellipse(img, point(cx, cy - 0.12 * u), point(0.42 * u, 0.45 * u), 0, 180, 360, hair, -1, _AA)
    for s in (-1, 1):
        cv2.ellipse(img, point(cx + s * 0.15 * u, cy - 0.05 * u), point(0.07 * u, 0.035 * u), 0, 0, 360, (40, 30, 30),
                    -1, _AA)
        cv2.line(img, point(cx + s * 0.08 * u, cy - 0.14 * u), point(cx + s * 0.24 * u, cy - 0.16 * u), (30, 30, 40),
                 2, _AA)
    cv2.line(img, point(cx, cy), point(cx - 0.03 * u, cy + 0.15 * u), tuple(int(v * 0.8) for v in skin), 1, _AA)
    cv2.ellipse(img, point(cx, cy + 0.27 * u), point(0.12 * u, 0.04 * u), 0, 0, 180, (70, 70, 170), 2, _AA)


def model_photo(product: Sprite, category: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A catalogue photo of the product worn by a model on a studio background, framed on the product (as shops
    photograph garments); returns the photo (BGR) and the product's outline in it."""
    tone = rng.uniform(225, 250) + np.float32(rng.uniform(-6, 6, 3))
    img = np.broadcast_to(np.float32(tone) * np.linspace(1.02, 0.94, size, dtype=np.float32)[:, None, None],
                          (size, size, 3))
    img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    model = dress(product, category, 60.0, rng)
    lo, hi = model.product_outline.min(axis=0), model.product_outline.max(axis=0)
    scale = rng.uniform(0.6, 0.75) * size / float(max(hi - lo))
    m = similarity_transform((size / 2 + rng.uniform(-8, 8), size / 2 + rng.uniform(-8, 8)), rng.uniform(-3, 3),
                             scale, tuple((lo + hi) / 2))
    paste(img, model.figure, m)
    return img, apply_affine(m, model.product_outline)
