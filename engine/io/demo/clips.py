"""The demo's livestream clips: a room, a presenter holding up a product, and a moving camera."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from engine.io.demo.sprites import (Sprite, apply_affine, compose, outline_box, paste, point, random_colour,
                                    similarity_transform, to_uint8)

FPS = 20

_SKIN = ((150, 180, 225), (120, 160, 210), (95, 130, 180))  # BGR
_CLOTHES = ((35, 35, 35), (235, 235, 235), (150, 150, 150), (170, 200, 220))  # the presenter's own top, BGR


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
    img = to_uint8(wall * np.linspace(1.05, 0.9, wh, dtype=np.float32)[:, None, None] + texture)
    side = int(rng.integers(2))  # which side the shelves stand on; the rail is on the other
    flip = (lambda x: ww - 1 - x) if side else (lambda x: x)
    panel = [(0, 0), (0.18 * ww, 0.06 * wh), (0.18 * ww, 0.8 * wh), (0, 0.9 * wh)]
    cv2.fillPoly(img, [np.int32([point(flip(x), y) for x, y in panel])], tuple(float(c) * 0.8 for c in wall))
    tint = ((0.65, 0.8, 1.0), (1.0, 1.0, 1.0))[int(rng.integers(2))]  # wood or stone
    floor, floor_y = tuple(c * rng.uniform(80, 160) for c in tint), int(0.82 * wh)
    cv2.rectangle(img, (0, floor_y), (ww, wh), floor, -1)
    for x in range(0, ww, 24):
        cv2.line(img, (x, floor_y), (x + (x - ww // 2) // 2, wh), tuple(c * 0.85 for c in floor), 1, cv2.LINE_AA)
    for k in range(3):
        cv2.circle(img, point((0.2 + 0.3 * k) * ww, 0.03 * wh), 6, (250, 250, 250), -1, cv2.LINE_AA)
    shelf_x, plank = (int(0.02 * ww) if side else int(0.7 * ww)), random_colour(rng, 60, 200)
    for k in range(4):
        y = int((0.25 + 0.16 * k) * wh)
        cv2.rectangle(img, (shelf_x, y), (shelf_x + int(0.28 * ww), y + 6), plank, -1)
        for j in range(3):
            bx, bw, bh = shelf_x + 4 + j * int(0.09 * ww), int(rng.integers(12, 26)), int(rng.integers(14, 40))
            cv2.rectangle(img, (bx, y - bh), (bx + bw, y), random_colour(rng, 30, 240), -1)
    rail_x, rail_y = (int(0.68 * ww) if side else int(0.02 * ww)), int(0.2 * wh)
    cv2.line(img, (rail_x, rail_y), (rail_x + int(0.3 * ww), rail_y), (90, 90, 90), 3, cv2.LINE_AA)
    for j in range(5):
        hx = rail_x + 6 + j * int(0.055 * ww)
        cv2.rectangle(img, (hx, rail_y + 4), (hx + int(0.05 * ww), rail_y + int(0.28 * wh)),
                      random_colour(rng, 30, 240), -1)
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
    head, (ax, ay) = point(cx, top - 0.09 * height), (0.085 * width, 0.065 * height)
    shoulder_y = top + 0.03 * height

    def trapezoid(y0: float, half0: float, y1: float, half1: float) -> np.ndarray:
        return np.int32([point(cx - half0, y0), point(cx + half0, y0), point(cx + half1, y1), point(cx - half1, y1)])

    cv2.fillPoly(img, [trapezoid(0.6 * wh, 0.1 * width, wh, 0.14 * width)], (90, 60, 40), aa)  # jeans
    cv2.ellipse(img, point(head[0], head[1] + 0.06 * height), point(1.25 * ax, 1.5 * ay), 0, 180, 360, hair, -1, aa)
    cv2.fillPoly(img, [trapezoid(shoulder_y, 0.26 * width, 0.62 * wh, 0.2 * width)], sleeve, aa)  # own top
    cv2.rectangle(img, point(cx - 0.04 * width, head[1]), point(cx + 0.04 * width, shoulder_y), skin, -1)  # neck
    cv2.ellipse(img, point(head[0], head[1] - 0.02 * height), point(1.15 * ax, 1.05 * ay), 0, 0, 360, hair, -1, aa)
    cv2.ellipse(img, head, point(ax, ay), 0, 0, 360, skin, -1, aa)
    for side in (-1, 1):
        cv2.circle(img, point(cx + side * 0.35 * ax, head[1] - 2), 2, (30, 30, 30), -1, aa)
    cv2.ellipse(img, point(head[0], head[1] + 0.45 * ay), point(0.3 * ax, 3), 0, 0, 180, (60, 60, 170), 2, aa)
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


def _draw_occluders(img: np.ndarray, mo: _Motion, x: float, g: np.ndarray, sprite: Sprite, stage: _Stage) -> None:
    """In their windows, an arm reaches across the product and a price card slides over its lower part."""
    sh, sw = sprite.alpha.shape
    width = img.shape[1]
    if mo.arm_at <= x < mo.arm_at + _OCCLUDE_FOR:
        k = (x - mo.arm_at) / _OCCLUDE_FOR
        tip = apply_affine(g, np.float32([[sw * (0.25 + 0.5 * k), sh * 0.55]]))[0]
        start = point(mo.arm_from[0] * img.shape[1], mo.arm_from[1] * img.shape[0])
        cv2.line(img, start, point(*tip), stage.skin, int(0.06 * width), cv2.LINE_AA)
    if mo.sign_at <= x < mo.sign_at + _OCCLUDE_FOR:
        k = (x - mo.sign_at) / _OCCLUDE_FOR
        bottom = apply_affine(g, sprite.outline)[:, 1].max()
        cw, ch = int(0.32 * width), int(0.1 * img.shape[0])
        x0, y0 = int(-cw + k * (width + cw)), int(stage.anchor[1] + 0.45 * (bottom - stage.anchor[1]))
        cv2.rectangle(img, (x0, y0), (x0 + cw, y0 + ch), (245, 245, 245), -1)
        cv2.rectangle(img, (x0, y0), (x0 + cw, y0 + ch), (40, 40, 200), 3)
        cv2.putText(img, mo.price, (x0 + 8, y0 + int(0.75 * ch)), cv2.FONT_HERSHEY_DUPLEX, ch / 40,
                    (40, 40, 200), 2, cv2.LINE_AA)


def clip_frames(sprite: Sprite, size: tuple[int, int], n: int,
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
        g = similarity_transform(centre, _at(mo.sway, sec), scale, sprite.centre)
        img = stage.image.copy()
        paste(img, sprite, g)
        for shoulder, grip in zip(stage.shoulders, apply_affine(g, sprite.grips)):  # arms up to the hands holding it
            cv2.line(img, point(*shoulder), point(*grip), stage.sleeve, int(0.06 * width), cv2.LINE_AA)
            cv2.ellipse(img, point(*grip), point(0.035 * width, 0.025 * width), 0, 0, 360, stage.skin, -1, cv2.LINE_AA)
        _draw_occluders(img, mo, x, g, sprite, stage)
        view = (width / 2 + _at(mo.pan[0], x), height / 2 + _at(mo.pan[1], x))
        cam = similarity_transform(view, 0.0, 1.0 + _at(mo.zoom, x), world_centre)
        frame = cv2.warpAffine(img, cam, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        t, b = _at(mo.warmth, x), 1.0 + _at(mo.light, x)
        frame = cv2.transform(frame, np.diag(np.float32([b * (1 - t), b, b * (1 + t)])))  # exposure, white balance
        _overlay(frame)
        frame = cv2.add(cv2.GaussianBlur(frame, (3, 3), 0.7), noise[int(rng.integers(len(noise)))], dtype=cv2.CV_8U)
        yield frame, outline_box(compose(cam, g), sprite.outline, width, height)


def _overlay(frame: np.ndarray) -> None:
    """Screen-space livestream furniture: a LIVE badge and a viewer count, drawn in place."""
    h, w = frame.shape[:2]
    bw, bh = int(0.16 * w), int(0.035 * h)
    cv2.rectangle(frame, (6, 6), (6 + bw, 6 + bh), (60, 40, 220), -1)
    cv2.putText(frame, "LIVE", (10, 4 + bh), cv2.FONT_HERSHEY_SIMPLEX, bh / 30, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(frame, "1.2w", (12 + bw, 4 + bh), cv2.FONT_HERSHEY_SIMPLEX, bh / 34, (255, 255, 255), 1, cv2.LINE_AA)
