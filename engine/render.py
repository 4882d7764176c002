"""Drawing for display: boxes and labels on frames, region crops and uniform thumbnails.

UI-free: every function takes and returns RGB uint8 numpy arrays, so the app, the CLI or a notebook can use them.
Labels are drawn with OpenCV's Hershey fonts, which only have ASCII glyphs: categories are translated to English
(``engine.categories.english``) and anything else non-ASCII is dropped from the drawn text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import cv2
import numpy as np

from engine.categories import english
from engine.geometry import Box
from engine.io.images import crop
from engine.types import FrameVote, Neighbour, RegionMatch, RegionRef

Colour = tuple[int, int, int]  # RGB

ACCENT: Colour = (79, 70, 229)  # the best garment window: the app's primary colour
PERSON: Colour = (255, 255, 255)  # the detected region (a person, or the whole frame)
ANNOTATION: Colour = (16, 185, 129)  # an annotated catalogue region
INK: Colour = (17, 24, 39)  # outline and tag text on light tags
PAPER: Colour = (255, 255, 255)


@dataclass(frozen=True)
class Mark:
    """One box to draw, its tag text (may be empty), colour, whether it is the emphasised one, where its tag goes."""

    box: Box
    text: str = ""
    colour: Colour = ACCENT
    strong: bool = True
    below: bool = False  # tag under the box (keeps a region's tag clear of the tag of a window inside it)


def ascii_label(text: str) -> str:
    """The drawable form of a label: English category name, non-ASCII characters removed, spaces squeezed."""
    out = "".join(ch for ch in english(text) if 32 <= ord(ch) < 127)
    return " ".join(out.split())


def _scale(image: np.ndarray) -> float:
    """Line and font scale for an image: 1.0 for a 320-pixel width (labels stay legible when shown small)."""
    return min(3.0, max(0.6, image.shape[1] / 320.0))


def _resized(image: np.ndarray, marks: list[Mark], long_side: int | None) -> tuple[np.ndarray, list[Mark]]:
    """Image and marks scaled so that the image's longer side is ``long_side`` (None: unchanged)."""
    h, w = image.shape[:2]
    if not long_side or max(h, w) == long_side:
        return image, marks
    k = long_side / max(h, w)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    out = cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=interp)
    scaled = [Mark(tuple(float(v) * k for v in m.box), m.text, m.colour, m.strong, m.below)  # type: ignore[arg-type]
              for m in marks]
    return out, scaled


def _clip_box(box: Sequence[float], w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return max(0, min(x0, w - 1)), max(0, min(y0, h - 1)), max(0, min(x1, w - 1)), max(0, min(y1, h - 1))


def draw_marks(image: np.ndarray, marks: Iterable[Mark], long_side: int | None = None) -> np.ndarray:
    """A copy of ``image`` with each box outlined and its tag drawn at its top-left corner (inside the frame).

    With ``long_side`` the image is first scaled so that its longer side has that many pixels (boxes follow).
    """
    image, marks = _resized(image, list(marks), long_side)
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    s = _scale(out)
    for m in sorted(marks, key=lambda m: m.strong):  # emphasised marks on top
        x0, y0, x1, y1 = _clip_box(m.box, w, h)
        thick = max(1, round((3 if m.strong else 2) * s))
        cv2.rectangle(out, (x0, y0), (x1, y1), INK, thick + 2, cv2.LINE_AA)
        cv2.rectangle(out, (x0, y0), (x1, y1), m.colour, thick, cv2.LINE_AA)
    for m in sorted(marks, key=lambda m: m.strong):
        text = ascii_label(m.text)
        if text:
            x0, y0, _, y1 = _clip_box(m.box, w, h)
            _tag(out, text, x0, y0, m.colour, s, below_y=y1 if m.below else None)
    return out


def _tag(img: np.ndarray, text: str, x: int, y: int, colour: Colour, s: float, below_y: int | None = None) -> None:
    """A filled label with readable text above the box's top ``y`` (or under its bottom ``below_y``), kept inside
    the image."""
    font, fs, ft = cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, max(1, round(1.4 * s))
    (tw, th), base = cv2.getTextSize(text, font, fs, ft)
    pad = max(2, round(4 * s))
    h, w = img.shape[:2]
    tag_h = th + base + 2 * pad
    x = max(0, min(x, w - tw - 2 * pad))
    if below_y is not None:
        top = below_y if below_y + tag_h <= h else below_y - tag_h  # under the box, else just inside it
    else:
        top = y - tag_h
        if top < 0:  # no room above the box: draw inside it
            top = y
    top = min(max(0, top), h - tag_h)
    cv2.rectangle(img, (x, top), (x + tw + 2 * pad, top + th + base + 2 * pad), colour, -1)
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    cv2.putText(img, text, (x + pad, top + pad + th), font, fs, INK if luma > 150 else PAPER, ft, cv2.LINE_AA)


def _voted_neighbour(region: RegionMatch, product_id: str | None) -> Neighbour | None:
    """The region's best neighbour of a product (its best neighbour overall when no product is given)."""
    if product_id is None:
        return region.best
    return max((n for n in region.neighbours if n.product_id == product_id), key=lambda n: n.similarity, default=None)


def region_marks(region: RegionMatch, with_region: bool = True, product_id: str | None = None) -> list[Mark]:
    """The detected region (thin, white) and its best-matching garment window (accent, with category and score).

    With ``product_id`` (the product the frame voted for) the window's tag names the category of that product's
    catalogue region it matched, and that similarity, so the label never contradicts the vote."""
    marks: list[Mark] = []
    if with_region and region.label == "whole frame":
        marks.append(whole_frame_mark(region))
    elif with_region and region.match_box is not None and tuple(region.match_box) != tuple(region.box):
        marks.append(Mark(region.box, f"{region.label} {region.score:.2f}", PERSON, strong=False, below=True))
    box = region.match_box if region.match_box is not None else region.box
    nb = _voted_neighbour(region, product_id)
    category = region.category if product_id is None else (nb.region.category if nb is not None else "")
    text = ascii_label(category) or "garment"
    if nb is not None:
        text = f"{text} {nb.similarity:.2f}"
    marks.append(Mark(box, text, ACCENT, strong=True))
    return marks


def whole_frame_mark(region: RegionMatch) -> Mark:
    """A whole-frame region (nobody detected) as a white outline set just inside the frame's border, tagged, so it
    stays visible: a box on the border itself would be cut in half and read as no box at all."""
    x0, y0, x1, y1 = (float(v) for v in region.box)
    inset = max(3.0, 0.015 * max(x1 - x0, y1 - y0))
    return Mark((x0 + inset, y0 + inset, x1 - inset, y1 - inset), "whole frame", PERSON, strong=False, below=True)


def deciding_region(vote: FrameVote) -> RegionMatch | None:
    """The region whose similarity decided the frame's vote (the first region when nothing was voted)."""
    if not vote.regions:
        return None
    if vote.voted_product is None:
        return vote.regions[0]

    def sim(r: RegionMatch) -> float:
        return max((n.similarity for n in r.neighbours if n.product_id == vote.voted_product), default=-1.0)

    return max(vote.regions, key=sim)


def annotate_frame(image: np.ndarray, vote: FrameVote, long_side: int | None = None) -> np.ndarray:
    """A sampled frame with every region drawn; the region that decided the vote is emphasised. A whole-frame
    region (nobody detected) gets an inset white outline tagged "whole frame"."""
    decider = deciding_region(vote)
    marks: list[Mark] = []
    for r in vote.regions:
        if r is decider:
            continue
        marks.append(whole_frame_mark(r) if r.label == "whole frame"
                     else Mark(r.box, f"{r.label} {r.score:.2f}", PERSON, False, below=True))
    if decider is not None:
        marks.extend(region_marks(decider, product_id=vote.voted_product))
    return draw_marks(image, marks, long_side)


def annotate_regions(image: np.ndarray, regions: Iterable[RegionRef], long_side: int | None = None) -> np.ndarray:
    """A catalogue image with its annotated regions: the sold product in green, other garments in white."""
    marks = [
        Mark(r.box, ascii_label(r.category), ANNOTATION if r.instance_id != 0 else PERSON, r.instance_id != 0)
        for r in regions
    ]
    return draw_marks(image, marks, long_side)


def padded_crop(image: np.ndarray, box: Sequence[float] | None, pad: float = 0.06) -> np.ndarray:
    """The box (grown by ``pad`` of its size on each side) cut out of the image; the whole image without a box."""
    if box is None:
        return image
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = (x1 - x0) * pad, (y1 - y0) * pad
    return crop(image, (x0 - dx, y0 - dy, x1 + dx, y1 + dy))


def thumbnail(
    image: np.ndarray, size: tuple[int, int] = (320, 320), background: Colour = (246, 247, 251)
) -> np.ndarray:
    """The image scaled to fit (width, height) and centred on a plain background, so thumbnails line up."""
    tw, th = size
    h, w = image.shape[:2]
    scale = min(tw / max(1, w), th / max(1, h))
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.empty((th, tw, 3), np.uint8)
    out[:] = background
    x, y = (tw - nw) // 2, (th - nh) // 2
    out[y : y + nh, x : x + nw] = small
    return out


def fit(image: np.ndarray, max_size: tuple[int, int]) -> np.ndarray:
    """The image scaled down (never up) to fit within (width, height), keeping its aspect ratio."""
    mw, mh = max_size
    h, w = image.shape[:2]
    scale = min(1.0, mw / max(1, w), mh / max(1, h))
    if scale >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, quality: int = 88) -> bytes:
    """RGB array to JPEG bytes (for caching and serving)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
