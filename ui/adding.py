"""The Catalogue page's "Add a product" panel: the product's fields, then each chosen image with a proposed product
box to confirm and adjust before anything is written.

The box is proposed by the engine's detector (``engine.pipeline.regions.propose_boxes``: the best detected region,
none when only the whole image was found). Only a box the person ticks becomes the product's annotated region
(``engine.io.editing.add_product``); the other images are left to detection when the index is built. The panel is
not an ``st.form``: the drawn box follows the sliders as they move.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import streamlit as st

from engine.categories import CATEGORY_EN
from engine.config import Settings
from engine.errors import EngineError
from engine.geometry import Box
from engine.io.editing import decode_upload
from engine.pipeline.regions import propose_boxes
from engine.render import ANNOTATION, PERSON, Mark, draw_marks, encode_jpeg, fit, thumbnail
from ui.text import md

from . import state
from .components import image_or_placeholder

Span = tuple[int, int]  # a range slider's value, in % of the image
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
FIELD_KEYS = ("catalogue.new_id", "catalogue.new_name", "catalogue.new_category", "catalogue.new_images")
BOX_PREFIX = "catalogue.box."  # + "<n>.<digest>.use|x|y": one image's box widgets
PER_ROW = 3
PREVIEW = 640  # long side of the preview kept for drawing, in pixels
TILE = (480, 480)
HAND_DRAWN: tuple[Span, Span] = ((10, 90), (10, 90))  # the sliders' start when nothing was detected


@dataclass(frozen=True)
class Preview:
    """An uploaded image as it will be stored: its size, a small copy to draw on, the proposed box, or an error."""

    name: str
    size: tuple[int, int] = (0, 0)  # (width, height)
    image: np.ndarray | None = None
    proposal: Box | None = None
    note: str = ""  # why there is no proposal (or no image)


@dataclass(frozen=True)
class NewProduct:
    """What the panel's widgets hold: the fields, the uploads and one confirmed box (or None) per upload."""

    product_id: str
    name: str
    category: str
    files: list[tuple[str, bytes]]
    boxes: list[Box | None]

    @property
    def n_boxes(self) -> int:
        return sum(b is not None for b in self.boxes)


# --------------------------------------------------------------------------------------------- pure helpers
def to_percent(box: Box | None, size: tuple[int, int]) -> tuple[Span, Span]:
    """A pixel box as (left, right) and (top, bottom) in whole % of the image, covering the box."""
    if box is None:
        return HAND_DRAWN
    w, h = max(1, size[0]), max(1, size[1])

    def span(a: float, b: float, extent: int) -> Span:
        lo = min(99, max(0, math.floor(a / extent * 100)))
        return lo, max(lo + 1, min(100, math.ceil(b / extent * 100)))

    return span(box[0], box[2], w), span(box[1], box[3], h)


def to_pixels(xs: Sequence[int], ys: Sequence[int], size: tuple[int, int]) -> Box:
    """(left, right) and (top, bottom) in % of an image of (width, height) as a pixel box."""
    w, h = size
    return (xs[0] * w / 100, ys[0] * h / 100, xs[1] * w / 100, ys[1] * h / 100)


def clear_form() -> None:
    """Empty the panel for the next product (its fields, uploads and boxes)."""
    for key in [*FIELD_KEYS, *(k for k in st.session_state if str(k).startswith(BOX_PREFIX))]:
        st.session_state.pop(key, None)


# --------------------------------------------------------------------------------------------- previews
@st.cache_data(show_spinner=False, max_entries=128)
def _preview(digest: str, name: str, detection: tuple, _data: bytes, _settings: Settings) -> Preview:
    """Decode one upload and propose its product box (cached by content and detection settings)."""
    try:
        image = decode_upload(name, _data)
    except EngineError as e:
        return Preview(name, note=str(e))
    size = (int(image.shape[1]), int(image.shape[0]))
    try:
        proposal = propose_boxes(state.get_engine_models(_settings).detector, [image], _settings.detection)[0]
    except EngineError as e:
        return Preview(name, size, fit(image, (PREVIEW, PREVIEW)), None, f"the detector could not run ({e})")
    note = "" if proposal is not None else "nothing detected"
    return Preview(name, size, fit(image, (PREVIEW, PREVIEW)), proposal, note)


def previews(settings: Settings, files: Sequence[tuple[str, bytes]]) -> list[tuple[str, Preview]]:
    """(digest, preview) of each upload; the detector runs once per new image."""
    s = settings.detection
    detection = (s.det_threshold, s.max_regions, s.min_region_area, s.side_by_side, settings.models.detector)
    out = []
    with st.spinner("Looking for the product in the images…", show_time=True):
        for name, data in files:
            digest = hashlib.sha256(data).hexdigest()[:16]
            out.append((digest, _preview(digest, name, detection, data, settings)))
    return out


def _tile(p: Preview, box: Box | None, confirmed: bool) -> bytes | None:
    if p.image is None:
        return None
    marks = []
    if box is not None:
        k = p.image.shape[1] / max(1, p.size[0])
        scaled = (box[0] * k, box[1] * k, box[2] * k, box[3] * k)
        marks.append(Mark(scaled, "product" if confirmed else "proposed", ANNOTATION if confirmed else PERSON,
                          strong=confirmed))
    return encode_jpeg(thumbnail(draw_marks(p.image, marks), TILE))


def _caption(p: Preview) -> str:
    found = ("box of the detected person: narrow it to the garment" if p.proposal is not None
             else (p.note or "nothing detected"))
    return f"{p.name} · {p.size[0]}×{p.size[1]} · {found}"


def drawn_box(selection: object, preview_width: int, size: tuple[int, int]) -> Box | None:
    """The rectangle dragged on the preview (a plotly box selection, in preview pixels) as a box in the image's own
    pixels, clipped to it; None when nothing (or nothing with an area) was drawn."""
    try:
        boxes = selection["selection"]["box"]  # type: ignore[index]
        last = boxes[-1]
        xs, ys = [float(v) for v in last["x"]], [float(v) for v in last["y"]]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    k = size[0] / max(1, preview_width)
    x0, x1 = sorted(min(max(v * k, 0.0), size[0]) for v in xs[:2])
    y0, y1 = sorted(min(max(v * k, 0.0), size[1]) for v in ys[:2])
    return (x0, y0, x1, y1) if x1 - x0 >= 1 and y1 - y0 >= 1 else None


def _figure(p: Preview, box: Box | None, confirmed: bool):
    """The preview as a chart a box can be dragged on, with the current box drawn."""
    import plotly.graph_objects as go

    assert p.image is not None
    h, w = p.image.shape[:2]
    fig = go.Figure(go.Image(z=p.image, hoverinfo="skip"))
    gx, gy = np.meshgrid(np.linspace(0, w, 24), np.linspace(0, h, 24))  # invisible points: box selection needs a
    fig.add_trace(go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", marker={"opacity": 0},  # selectable trace
                             hoverinfo="skip", showlegend=False))
    if box is not None:
        k = w / max(1, p.size[0])
        colour = "#10b981" if confirmed else "#ffffff"
        fig.add_shape(type="rect", x0=box[0] * k, y0=box[1] * k, x1=box[2] * k, y1=box[3] * k,
                      line={"color": colour, "width": 3}, fillcolor="rgba(0,0,0,0)")
        fig.add_annotation(x=box[0] * k, y=box[1] * k, text="product" if confirmed else "proposed", showarrow=False,
                           xanchor="left", yanchor="bottom", bgcolor=colour, font={"color": "#111827", "size": 11})
    fig.update_layout(dragmode="select", margin={"l": 0, "r": 0, "t": 0, "b": 0}, height=360,
                      xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
                      plot_bgcolor="#f4f5fb", paper_bgcolor="rgba(0,0,0,0)")
    return fig


def box_card(n: int, digest: str, p: Preview, keeps_boxes: bool) -> Box | None:
    """One image: its box drawn on it, "Use this box as the product", and the box itself: dragged on the image, or
    set with two range sliders; the confirmed box or None."""
    with st.container(border=True):
        slot = st.empty()
        if p.image is None:
            with slot.container():
                image_or_placeholder(None)
            st.warning(f"{md(p.note)}: this image cannot be added.", icon=":material/broken_image:")
            return None
        st.caption(md(_caption(p)))
        if not keeps_boxes:
            slot.image(_tile(p, p.proposal, False), width="stretch")
            return None
        key = f"{BOX_PREFIX}{n}.{digest}"
        drawn = drawn_box(st.session_state.get(f"{key}.draw"), p.image.shape[1], p.size)
        if drawn is not None and st.session_state.get(f"{key}.applied") != drawn:
            st.session_state[f"{key}.applied"] = drawn  # a new rectangle: it becomes the box, once
            st.session_state[f"{key}.use"] = True
            xs, ys = to_percent(drawn, p.size)
            st.session_state[f"{key}.x"], st.session_state[f"{key}.y"] = xs, ys
        use = st.checkbox("Use this box as the product", key=f"{key}.use",
                          help="Saved as the product's annotated region. Unticked: the image is kept, and its "
                               "regions are detected when the index is built.")
        box = p.proposal
        if use:
            xs0, ys0 = to_percent(p.proposal, p.size)
            xs = st.slider("Left – right (% of the width)", 0, 100, xs0, key=f"{key}.x")
            ys = st.slider("Top – bottom (% of the height)", 0, 100, ys0, key=f"{key}.y")
            box = to_pixels(xs, ys, p.size)
            if xs[1] <= xs[0] or ys[1] <= ys[0]:
                st.warning("Widen the box: it has no area.", icon=":material/warning:")
        slot.plotly_chart(_figure(p, box, use), key=f"{key}.draw", on_select="rerun", selection_mode="box",
                          config={"displayModeBar": False}, width="stretch")
        return box if use else None


# --------------------------------------------------------------------------------------------- the panel
def product_form(settings: Settings, keeps_boxes: bool) -> NewProduct:
    """The new product's fields, its images and their boxes, read from the widgets (drawn here)."""
    c1, c2, c3 = st.columns([1, 2, 1])
    pid = c1.text_input("Product id", placeholder="e.g. 900101", max_chars=64, key="catalogue.new_id",
                        help="Letters, digits, '-', '_' and '.'; it names the product's folder.")
    name = c2.text_input("Name", placeholder="e.g. Red striped T-shirt", key="catalogue.new_name")
    category = c3.selectbox("Category", ["", *CATEGORY_EN], format_func=lambda c: CATEGORY_EN.get(c, "unspecified"),
                            key="catalogue.new_category")
    uploads = st.file_uploader("Product images", type=IMAGE_TYPES, accept_multiple_files=True,
                               key="catalogue.new_images",
                               help="Shop photos of the product: JPEG, PNG, WebP or BMP. Each one is checked first.")
    files = [(f.name, f.getvalue()) for f in uploads or []]
    boxes: list[Box | None] = [None] * len(files)
    if files:
        st.caption("Drag a rectangle on an image around the product (or tick **Use this box as the product** and "
                   "adjust the proposed box with the sliders). Only ticked boxes are saved as the product's region; the other images are left to the "
                   "detector when the index is built." if keeps_boxes else
                   "This catalogue (a folder per product) keeps no boxes: the product's regions are detected when "
                   "the index is built.")
        shown = previews(settings, files)
        for start in range(0, len(shown), PER_ROW):
            for col, n in zip(st.columns(PER_ROW), range(start, min(start + PER_ROW, len(shown)))):
                with col:
                    boxes[n] = box_card(n, *shown[n], keeps_boxes)
    return NewProduct(pid, name, category, files, boxes)
