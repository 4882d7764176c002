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
from engine.pipeline.engine import Engine, query_frames
from engine.pipeline.search import Query, product_scores
from engine.pipeline.sources import PreparedQuery
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
    changed: int = 0  # clips whose ranking (the top five, in order) differs from the one without corrections
    orders: tuple[tuple[str, ...], ...] = ()  # per clip, its top five products in order


@dataclass(frozen=True)
class BoundChoice:
    """The example bound, chosen leave-one-clip-out: per held-out clip, the smallest bound (a step over the highest
    cosine between a clip's later windows and another product's clip's examples) on the other clips; whether that
    bound kept the held-out clip apart from the others' examples, and its own examples in use."""

    folds: tuple[tuple[str, float, bool, bool], ...]  # (clip, bound chosen without it, kept apart, own kept)
    bound: float  # chosen on all clips
    own: tuple[float, ...]  # per clip: the best cosine between its later windows and its own examples


@dataclass
class _Clip:
    ref: ClipRef
    later: Query  # the second half, prepared once
    boxes: list[np.ndarray]  # embeddings of the annotated boxes in the second half
    examples: dict[str, list[FrameExamples]]  # region choice -> the first half's examples of the truth


def evaluate_corrections(dataset: str | Path, settings: Settings, regions: tuple[str, ...] = REGION_CHOICES,
                         progress: Progress | None = None,
                         offsets: tuple[float, ...] = ()) -> tuple[list[CorrectionRow], BoundChoice]:
    """Before, after with each region choice (at the settings' example offset and bound), then for the first choice
    and each of ``offsets``: after, and with the other clips' examples only (what a correction does to the clips it
    is not about); then the example bound chosen leave-one-clip-out, and both rows without a bound and with it."""
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
        early, later = query_frames(engine, frames[:half]), query_frames(engine, frames[half:])
        clips.append(_Clip(ref, later, _later_boxes(engine, ref, frames[half].index),
                           {r: examples_of(engine, early, str(ref.truth), r) for r in regions}))
    before = _score(engine, "before: no corrections", clips, lambda c: NO_EXAMPLES)
    rows = [before]
    for r in regions:
        everything = example_set(engine, {str(c.ref.truth): c.examples[r] for c in clips})
        rows.append(_score(engine, f"after: {r}, offset {settings.search.example_offset:g}", clips, lambda c: everything,
                           before))
    first = regions[0]
    everything = example_set(engine, {str(c.ref.truth): c.examples[first] for c in clips})
    others = {c.ref.video_id: example_set(engine, {str(o.ref.truth): o.examples[first] for o in clips if o is not c})
              for c in clips}
    default = settings.search.example_offset
    for offset in dict.fromkeys((default, *offsets)):
        shifted = Engine(settings.with_(example_offset=offset), engine.detector, engine.embedder, index)
        if offset != default:  # the default's "after" row is above
            rows.append(_score(shifted, f"after: {first}, offset {offset:g}", clips, lambda c: everything, before))
        rows.append(_score(shifted, f"other clips' only: {first}, offset {offset:g}", clips,
                           lambda c: others[c.ref.video_id], before))
    choice = choose_bound(engine, clips, first)
    for bound in (-1.0, choice.bound):
        bounded = Engine(settings.with_(example_bound=bound), engine.detector, engine.embedder, index)
        label = "no bound" if bound <= -1 else f"bound {bound:.2f}"
        rows.append(_score(bounded, f"after: {first}, {label}", clips, lambda c: everything, before))
        rows.append(_score(bounded, f"other clips' only: {first}, {label}", clips, lambda c: others[c.ref.video_id],
                           before))
    progress("done", 1.0)
    return rows, choice


STEP = 0.01  # bounds are rounded up to this


def choose_bound(engine: Engine, clips: list[_Clip], regions: str) -> BoundChoice:
    """The example bound, leave-one-clip-out (``BoundChoice``)."""
    index = engine.index
    assert index is not None
    later = [index.prepare(c.later.plan.vectors) for c in clips]
    own_sets = [example_set(engine, {str(c.ref.truth): c.examples[regions]}) for c in clips]
    n = len(clips)
    cos = np.full((n, n), -1.0)  # cos[a, b]: clip a's later windows against clip b's examples
    for a in range(n):
        for b in range(n):
            if len(own_sets[b]) and len(later[a]):
                cos[a, b] = float((later[a] @ own_sets[b].vectors.T).max())
    other = np.array([[clips[a].ref.truth != clips[b].ref.truth for b in range(n)] for a in range(n)])

    def bound_without(skip: int | None) -> float:
        keep = np.array([i != skip for i in range(n)])
        leaks = cos[np.ix_(keep, keep)][other[np.ix_(keep, keep)]]
        top = float(leaks.max()) if leaks.size else -1.0
        return round(float(np.floor(top / STEP) + 1) * STEP, 4)

    folds = []
    for c in range(n):
        b = bound_without(c)
        apart = bool(max(cos[c][other[c]].max(initial=-1.0), cos[:, c][other[:, c]].max(initial=-1.0)) < b)
        folds.append((clips[c].ref.video_id, b, apart, bool(cos[c, c] >= b)))
    return BoundChoice(tuple(folds), bound_without(None), tuple(round(float(cos[i, i]), 4) for i in range(n)))


def format_bound(choice: BoundChoice) -> str:
    """The leave-one-clip-out choice of the example bound, in lines."""
    lines = ["example bound, leave-one-clip-out (a step over the best cosine between another product's clip and "
             "the examples, on the other clips):"]
    for (clip, b, apart, kept), own in zip(choice.folds, choice.own):
        lines.append(f"  {clip}: bound {b:.2f}, other products' examples {'kept out' if apart else 'LEAK'}, "
                     f"own examples {'used' if kept else 'unused'} (own best cosine {own:.3f})")
    held = sum(a for _, _, a, _ in choice.folds)
    used = sum(k for _, _, _, k in choice.folds)
    lines.append(f"held-out clips kept apart {held} of {len(choice.folds)}, own examples used {used} of "
                 f"{len(choice.folds)}; bound on all clips {choice.bound:.2f}")
    return "\n".join(lines)


def _later_boxes(engine: Engine, ref: ClipRef, start: int) -> list[np.ndarray]:
    """Embeddings of the annotated product boxes in the clip's frames from ``start`` on."""
    boxes = {i: [r.box for r in regs if r.instance_id != 0] for i, regs in ref.frames if i >= start}
    boxes = {i: b for i, b in boxes.items() if b}
    out: list[np.ndarray] = []
    for frame in read_frames(ref.path, sorted(boxes), downscale=False) if boxes else []:  # type: ignore[arg-type]
        out += list(engine.embedder.embed([crop(frame.image, b) for b in boxes[frame.index]]))
    return out


def _score(engine: Engine, name: str, clips: list[_Clip], examples_for: Callable[[_Clip], ExampleSet],
           before: CorrectionRow | None = None) -> CorrectionRow:
    index = engine.index
    assert index is not None
    ranks, region_hits, n_boxes, n_examples, orders = [], 0, 0, 0, []
    s = engine.settings.search
    for c in clips:
        examples = examples_for(c)
        n_examples = max(n_examples, len(examples))
        result = engine.match(PreparedQuery(c.later), examples=examples)
        ranks.append(result.rank_of(str(c.ref.truth)))
        orders.append(tuple(p.product_id for p in result.ranking[:5]))
        for v in c.boxes:
            sims = product_scores(index, v, examples, s.example_offset, s.product_pooling, s.example_bound)
            n_boxes += 1
            region_hits += max(sims, key=sims.get) == c.ref.truth if sims else 0  # type: ignore[arg-type]
    n = max(1, len(ranks))
    changed = sum(a != b for a, b in zip(orders, before.orders)) if before is not None else 0
    return CorrectionRow(name, n_examples, len(ranks), round(sum(r == 1 for r in ranks) / n, 4),
                         round(sum(1 / r for r in ranks if r) / n, 4), n_boxes,
                         round(region_hits / n_boxes, 4) if n_boxes else 0.0, changed, tuple(orders))


def format_rows(rows: list[CorrectionRow]) -> str:
    w = max(len("set-up"), *(len(r.setup) for r in rows))
    lines = [f"{'set-up':<{w}} {'examples':>8} {'clips':>5} {'top-1':>6} {'MRR':>6} {'boxes':>5} {'region':>7} "
             f"{'changed':>7}"]
    for r in rows:
        lines.append(f"{r.setup:<{w}} {r.examples:>8} {r.clips:>5} {r.top1:>6.3f} {r.mrr:>6.3f} {r.region_boxes:>5} "
                     f"{r.region_top1:>7.3f} {r.changed:>7}")
    lines.append("first half of each clip's sampled frames stored as examples of its true product; scored on the "
                 "second half. examples: example regions searched; region: the second halves' annotated boxes, each "
                 "searched alone; 'other clips' only': each clip matched with every clip's examples but its own; changed: clips "
                 "whose top five (in order) differ from 'before'")
    return "\n".join(lines)
