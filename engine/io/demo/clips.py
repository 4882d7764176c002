"""The demo's livestream clips: a room, a presenter wearing a product, and a moving camera."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from engine.io.demo.presenter import dress
from engine.io.demo.sprites import (Sprite, compose, outline_box, paste, point, random_colour, similarity_transform,
                                    to_uint8)

FPS = 20



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


_Wave = tuple[float, float, float]


def _wave(rng: np.random.Generator, amplitude: float, cycles: tuple[float, float]) -> _Wave:
    """A random slow sinusoid: (amplitude, cycles per unit of time, phase)."""
    return amplitude, float(rng.uniform(*cycles)), float(rng.uniform(0, 2 * np.pi))


def _at(wave: _Wave, x: float) -> float:
    a, f, ph = wave
    return a * math.sin(2 * math.pi * f * x + ph)


@dataclass(frozen=True)
class _Motion:
    """A clip's random script: camera, light, sway and when the price card passes."""

    zoom: _Wave
    pan: tuple[_Wave, _Wave]
    light: _Wave
    warmth: _Wave
    sway: _Wave  # degrees
    sway_at: tuple[_Wave, _Wave]
    sign_at: float  # clip fraction where a price card starts to slide across
    price: str

    @staticmethod
    def draw(rng: np.random.Generator, width: int, height: int) -> _Motion:
        early = bool(rng.integers(2))
        return _Motion(
            zoom=_wave(rng, 0.06, (0.4, 0.7)),
            pan=(_wave(rng, 0.04 * width, (0.3, 0.8)), _wave(rng, 0.02 * height, (0.3, 0.8))),
            light=_wave(rng, 0.12, (0.5, 1.0)), warmth=_wave(rng, 0.08, (0.3, 0.6)),
            sway=_wave(rng, 4.0, (0.4, 0.7)),
            sway_at=(_wave(rng, 0.025 * width, (0.3, 0.5)), _wave(rng, 0.01 * height, (0.5, 0.9))),
            sign_at=0.15 if early else 0.6,
            price=f"-{int(rng.integers(2, 6)) * 10}%")


_OCCLUDE_FOR = 0.22  # clip fraction each occluder is in view


def _draw_price_card(img: np.ndarray, mo: _Motion, x: float, product_box: list[int]) -> None:
    """In its window, a price card slides across the lower part of the product."""
    if not mo.sign_at <= x < mo.sign_at + _OCCLUDE_FOR:
        return
    width = img.shape[1]
    k = (x - mo.sign_at) / _OCCLUDE_FOR
    cw, ch = int(0.32 * width), int(0.08 * img.shape[0])
    x0, y0 = int(-cw + k * (width + cw)), int(product_box[1] + 0.7 * (product_box[3] - product_box[1]))
    cv2.rectangle(img, (x0, y0), (x0 + cw, y0 + ch), (245, 245, 245), -1)
    cv2.rectangle(img, (x0, y0), (x0 + cw, y0 + ch), (40, 40, 200), 3)
    cv2.putText(img, mo.price, (x0 + 8, y0 + int(0.75 * ch)), cv2.FONT_HERSHEY_DUPLEX, ch / 40,
                (40, 40, 200), 2, cv2.LINE_AA)


def clip_frames(sprite: Sprite, category: str, size: tuple[int, int], n: int,
                rng: np.random.Generator) -> Iterator[tuple[np.ndarray, list[int]]]:
    """Yield (frame BGR uint8, product box) for a presenter wearing ``sprite`` under a moving camera."""
    width, height = size
    margin = int(0.12 * max(width, height))
    room = _room(width + 2 * margin, height + 2 * margin, rng)
    u = rng.uniform(0.105, 0.113) * height  # the figure stands about 0.9 of the frame high
    presenter = dress(sprite, category, u, rng)
    fh, fw = presenter.figure.alpha.shape
    feet = (room.shape[1] / 2 + rng.uniform(-0.04, 0.04) * width, margin + 0.985 * height)
    world_centre = (room.shape[1] / 2, room.shape[0] / 2)
    mo = _Motion.draw(rng, width, height)
    noise = [rng.standard_normal((height, width, 3), dtype=np.float32) * 3.0 for _ in range(6)]
    for i in range(n):
        x, sec = i / max(n - 1, 1), i / FPS  # camera and light drift over the clip; the presenter sways in time
        stand = (feet[0] + _at(mo.sway_at[0], sec), feet[1] + _at(mo.sway_at[1], sec))
        g = similarity_transform(stand, 0.5 * _at(mo.sway, sec), 1.0, (fw / 2, fh - 1))
        img = room.copy()
        paste(img, presenter.figure, g)
        view = (width / 2 + _at(mo.pan[0], x), height / 2 + _at(mo.pan[1], x))
        cam = similarity_transform(view, 0.0, 1.0 + _at(mo.zoom, x), world_centre)
        _draw_price_card(img, mo, x, outline_box(g, presenter.product_outline, *img.shape[1::-1]))
        frame = cv2.warpAffine(img, cam, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        t, b = _at(mo.warmth, x), 1.0 + _at(mo.light, x)
        frame = cv2.transform(frame, np.diag(np.float32([b * (1 - t), b, b * (1 + t)])))  # exposure, white balance
        _overlay(frame)
        frame = cv2.add(cv2.GaussianBlur(frame, (3, 3), 0.7), noise[int(rng.integers(len(noise)))], dtype=cv2.CV_8U)
        yield frame, outline_box(compose(cam, g), presenter.product_outline, width, height)


def _overlay(frame: np.ndarray) -> None:
    """Screen-space livestream furniture: a LIVE badge and a viewer count, drawn in place."""
    h, w = frame.shape[:2]
    bw, bh = int(0.16 * w), int(0.035 * h)
    cv2.rectangle(frame, (6, 6), (6 + bw, 6 + bh), (60, 40, 220), -1)
    cv2.putText(frame, "LIVE", (10, 4 + bh), cv2.FONT_HERSHEY_SIMPLEX, bh / 30, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(frame, "1.2w", (12 + bw, 4 + bh), cv2.FONT_HERSHEY_SIMPLEX, bh / 34, (255, 255, 255), 1, cv2.LINE_AA)
