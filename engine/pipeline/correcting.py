"""Corrections: a person says "this frame (or this clip) shows product X"; the frame's query regions are stored as
livestream examples of X (engine.index.corrections) and searched with the catalogue from the next match on,
without rebuilding the index.

Which regions of a corrected frame are stored (``regions``):

- "product" (the default): per detected region, the one window most similar to X's catalogue regions: the garment
  band that shows X, rather than the legs, the face or the background, which other clips of the same room share;
- "regions": each detected region as a whole (the first window of its plan: the person);
- "windows": every window of every region.

``python -m engine eval-corrections`` measures the three (README, Results).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.choices import REGION_CHOICES
from engine.geometry import Box, as_box
from engine.index.corrections import SOURCE, CorrectedFrame, Correction, CorrectionError, ExampleSet
from engine.io.files import file_digest
from engine.io.video import is_url, read_frames, sample_frames
from engine.pipeline.engine import Engine, query_frames
from engine.pipeline.search import Query
from engine.render import encode_jpeg
from engine.types import Frame, RegionRef



@dataclass(frozen=True)
class FrameExamples:
    """The regions of one frame chosen as examples of a product, with their raw embeddings."""

    frame: Frame
    boxes: list[Box]
    vectors: np.ndarray


@dataclass(frozen=True)
class ClipCorrection:
    """"This clip (these of its frames) shows product X": what ``correct_clip`` stores."""

    clip: str | Path  # a file or a URL
    product_id: str
    frames: Sequence[int] | None = None  # frame numbers; None: the frames a match samples
    regions: str = "product"  # which regions of a frame (see the module's docstring)
    clip_name: str = ""  # the name stored (default: the file's name, or the URL)
    clip_sha256: str = ""  # the clip's digest, when the caller knows it already


def check_product(engine: Engine, product_id: str, regions: str = "product") -> None:
    """Refuse an unknown product or region choice, with a message for a person."""
    if engine.index is None:
        raise CorrectionError("no index loaded: build one first (python -m engine build-index)")
    if regions not in REGION_CHOICES:
        raise CorrectionError(f"unknown region choice {regions!r}; choose one of {', '.join(REGION_CHOICES)}")
    if product_id not in engine.index.products:
        raise CorrectionError(f"unknown product {product_id!r}: it is not in this catalogue's index")


def examples_of(engine: Engine, query: Query, product_id: str, regions: str = "product") -> list[FrameExamples]:
    """Per frame of the query, the regions stored as examples of ``product_id`` (see the module's docstring)."""
    index = engine.index
    assert index is not None
    plan, out, row, k = query.plan, [], 0, 0
    for frame, dets in zip(query.frames, query.dets):
        boxes: list[Box] = []
        rows: list[np.ndarray] = []
        for _ in range(len(dets)):
            windows, n = plan.windows[k], len(plan.windows[k])
            vectors = plan.vectors[row : row + n]
            if regions == "windows":
                chosen = list(range(n))
            elif regions == "regions":
                chosen = [0]
            else:
                sims = index.product_similarities(vectors, [product_id]).get(product_id)
                chosen = [int(np.argmax(sims[0].max(axis=1)))] if sims is not None else [0]
            boxes += [as_box(windows[w]) for w in chosen]
            rows += [vectors[w] for w in chosen]
            row, k = row + n, k + 1
        if boxes:
            out.append(FrameExamples(frame, boxes, np.asarray(rows, np.float32)))
    return out


def example_set(engine: Engine, examples: dict[str, list[FrameExamples]], clip: str = "") -> ExampleSet:
    """In-memory examples (product -> its frames' examples), prepared like stored ones: what evaluation searches."""
    index = engine.index
    assert index is not None
    vectors, refs = [], []
    for pid, frames in examples.items():
        category = str(index.products.get(pid, {}).get("category", ""))
        for fx in frames:
            vectors.append(fx.vectors)
            refs += [RegionRef(pid, f"{clip}#{fx.frame.index}", b, category, 0, SOURCE) for b in fx.boxes]
    return ExampleSet.from_raw(vectors, refs, index.prepare, index.dim)


def correct_clip(engine: Engine, c: ClipCorrection) -> list[Correction]:
    """Store frames of a clip as examples of a product (``c``). One correction per frame, stored all or none; they
    take effect at once (the engine's index reloads its examples)."""
    clip, product_id, frames, regions = c.clip, c.product_id, c.frames, c.regions
    check_product(engine, product_id, regions)
    index = engine.index
    assert index is not None
    name = c.clip_name or (str(clip) if is_url(clip) else Path(clip).name)
    if frames is None:
        decoded = sample_frames(clip, engine.settings.detection.frames)
    else:
        wanted = sorted({int(f) for f in frames})
        if not wanted or wanted[0] < 0:
            raise CorrectionError("frame numbers must be 0 or more")
        decoded = read_frames(clip, wanted)
        missing = sorted(set(wanted) - {f.index for f in decoded})
        if missing:
            raise CorrectionError(f"{name}: frame {missing[0]} cannot be read (the clip is shorter?)")
    digest = c.clip_sha256 or ("" if is_url(clip) else file_digest(clip))
    found = [CorrectedFrame(fx.frame.index, fx.frame.time_s, fx.boxes, fx.vectors, encode_jpeg(fx.frame.image))
             for fx in examples_of(engine, query_frames(engine, decoded), product_id, regions)]
    # every frame in one log line: a correct killed half-way stores none of them, never a part
    stored = index.corrections.add_frames(product_id, name, digest, found, index.model_key, regions) if found else []
    index.refresh_examples()
    return stored
