"""What corrections buy: each clip's sampled frames are split in time; the first half is stored as livestream examples
of the clip's true product (as a person correcting it would), the second half is matched. Before: the second halves
matched without examples; after: with every clip's examples at once (so one clip's examples may also pull another
clip's frames). Region top-1 is over the annotated product boxes of the second halves, each searched alone.

``python -m engine eval-corrections --dataset DIR`` prints the table (README, Results)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import Settings
from engine.index.corrections import NO_EXAMPLES, ExampleSet
from engine.io.catalogue import ClipRef, load_catalogue
from engine.io.images import crop
from engine.io.video import read_frames, sample_frames
from engine.pipeline.correcting import REGION_CHOICES, FrameExamples, example_set, examples_of
from engine.pipeline.engine import Engine, Query
from engine.pipeline.search import product_scores
from engine.workspace import index_dir_for

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class CorrectionRow:
    """One set-up's scores on the second halves."""

    setup: str
    examples: int  # livestream example regions searched
    clips: int
    top1: float
    mrr: float
    region_boxes: int
    region_top1: float


@dataclass
class _Clip:
    ref: ClipRef
    later: Query  # the second half, prepared once
    boxes: list[np.ndarray]  # embeddings of the annotated boxes in the second half
    examples: dict[str, list[FrameExamples]]  # region choice -> the first half's examples of the truth


def evaluate_corrections(dataset: str | Path, settings: Settings, regions: tuple[str, ...] = REGION_CHOICES,
                         progress: Progress | None = None, offsets: tuple[float, ...] = ()) -> list[CorrectionRow]:
    """Before, after with each region choice (at the settings' example offset), then for the first choice and each
    of ``offsets``: after, and with the other clips' examples only (what a correction does to the clips it is not
    about)."""
    progress = progress or (lambda stage, f: None)
    catalogue = load_catalogue(dataset)
    engine = Engine(settings)
    engine.build_index(catalogue, index_dir_for(catalogue.root, settings), lambda s, f: progress(f"index: {s}", f))
    index = engine.index
    assert index is not None
    refs = [c for c in catalogue.clips.values() if c.path and c.truth in index.products]
    clips = []
    for n, ref in enumerate(refs):
        progress(f"prepare {ref.video_id}", n / max(1, len(refs)))
        frames = sample_frames(ref.path, settings.detection.frames)  # type: ignore[arg-type]
        half = len(frames) // 2
        early, later = engine.query(frames[:half]), engine.query(frames[half:])
        clips.append(_Clip(ref, later, _later_boxes(engine, ref, frames[half].index),
                           {r: examples_of(engine, early, str(ref.truth), r) for r in regions}))
    rows = [_score(engine, "before: no corrections", clips, lambda c: NO_EXAMPLES)]
    for r in regions:
        everything = example_set(engine, {str(c.ref.truth): c.examples[r] for c in clips})
        rows.append(_score(engine, f"after: {r}, offset {settings.search.example_offset:g}", clips, lambda c: everything))
    first = regions[0]
    everything = example_set(engine, {str(c.ref.truth): c.examples[first] for c in clips})
    others = {c.ref.video_id: example_set(engine, {str(o.ref.truth): o.examples[first] for o in clips if o is not c})
              for c in clips}
    default = settings.search.example_offset
    for offset in dict.fromkeys((default, *offsets)):
        shifted = Engine(settings.with_(example_offset=offset), engine.detector, engine.embedder, index)
        if offset != default:  # the default's "after" row is above
            rows.append(_score(shifted, f"after: {first}, offset {offset:g}", clips, lambda c: everything))
        rows.append(_score(shifted, f"other clips' only: {first}, offset {offset:g}", clips,
                           lambda c: others[c.ref.video_id]))
    progress("done", 1.0)
    return rows


def _later_boxes(engine: Engine, ref: ClipRef, start: int) -> list[np.ndarray]:
    """Embeddings of the annotated product boxes in the clip's frames from ``start`` on."""
    boxes = {i: [r.box for r in regs if r.instance_id != 0] for i, regs in ref.frames if i >= start}
    boxes = {i: b for i, b in boxes.items() if b}
    out: list[np.ndarray] = []
    for frame in read_frames(ref.path, sorted(boxes), downscale=False) if boxes else []:  # type: ignore[arg-type]
        out += list(engine.embedder.embed([crop(frame.image, b) for b in boxes[frame.index]]))
    return out


def _score(engine: Engine, name: str, clips: list[_Clip], examples_for: Callable[[_Clip], ExampleSet]) -> CorrectionRow:
    index = engine.index
    assert index is not None
    ranks, region_hits, n_boxes, n_examples = [], 0, 0, 0
    for c in clips:
        examples = examples_for(c)
        n_examples = max(n_examples, len(examples))
        result = engine.match_query(c.later, examples)
        ranks.append(result.rank_of(str(c.ref.truth)))
        for v in c.boxes:
            sims = product_scores(index, v, examples, engine.settings.search.example_offset,
                                  engine.settings.search.product_pooling)
            n_boxes += 1
            region_hits += max(sims, key=sims.get) == c.ref.truth if sims else 0  # type: ignore[arg-type]
    n = max(1, len(ranks))
    return CorrectionRow(name, n_examples, len(ranks), round(sum(r == 1 for r in ranks) / n, 4),
                         round(sum(1 / r for r in ranks if r) / n, 4), n_boxes,
                         round(region_hits / n_boxes, 4) if n_boxes else 0.0)


def format_rows(rows: list[CorrectionRow]) -> str:
    w = max(len("set-up"), *(len(r.setup) for r in rows))
    lines = [f"{'set-up':<{w}} {'examples':>8} {'clips':>5} {'top-1':>6} {'MRR':>6} {'boxes':>5} {'region':>7}"]
    for r in rows:
        lines.append(f"{r.setup:<{w}} {r.examples:>8} {r.clips:>5} {r.top1:>6.3f} {r.mrr:>6.3f} {r.region_boxes:>5} "
                     f"{r.region_top1:>7.3f}")
    lines.append("first half of each clip's sampled frames stored as examples of its true product; scored on the "
                 "second half. examples: example regions searched; region: the second halves' annotated boxes, each "
                 "searched alone; 'other clips' only': each clip matched with every clip's examples but its own")
    return "\n".join(lines)
