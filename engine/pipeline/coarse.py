"""Coarse-to-fine sampling of a timeline: frames are matched where the answer changes, not every few seconds.

The source is read on a fine grid (one frame every ``fine_s``, 1 s: sequentially, decoding only the grid's frames,
engine.io.stream) a few coarse windows at a time, and only some of those frames are matched:

- one frame every ``coarse_s`` (8 s), the coarse samples, matched together in one batch;
- between two coarse samples whose labels differ (the best product, or "no product" under ``none_below``), both sure
  of their product, with one cut between them (one pair of neighbouring grid frames that do not look alike, every
  other pair alike, or one step that stands out: the grid frames' thumbnails cost nothing to compare), the two
  frames either side of the cut (``locate``): where they carry the two labels, the boundary is known to ``fine_s``
  with 2 frames instead of 7; where not, each half (a coarse sample to its side of the cut) is looked at again by
  these same rules;
- between two that differ with no single cut, or where either is unsure: every grid frame between them, in one
  batch (the boundary to ``fine_s``). Halving instead (3 frames of the 7, one after the other) matched fewer frames
  but took longer: OpenVINO runs a batch padded to a compiled shape (8 crops, 4 regions a height), so one frame
  costs about what a batch of seven does, and three batches of one cost more than one of seven (the bench's coarse
  frames took 1.5 times a frame every 2 s);
- between two coarse samples that agree where either is unsure of its product (``SURE_LEAD``), a frame every
  ``dense_s`` (2 s), as evenly spaced sampling does, then every grid frame between those that differ: where the
  evidence is weak, frames are not saved;
- between two coarse samples that agree but neither look alike (their small grey thumbnails correlate by less than
  1 - ``LOOK_ALIKE``) nor show the person in the same place (their main boxes overlap less than ``SAME_BOX_IOU``): a
  cut, another scene, the frame half-way too, so a product shown for less than a coarse window between two shots
  of the same one is looked for; where they agree and look alike, nothing more.

A frame that barely differs from a frame already matched (``SAME_FRAME``) reuses its detection. Person regions run
through the backbones one a batch (``region_rows``, engine.models.embedders.timeline_regions): a compiled shape of one
row holds about half the memory of one of four (docs/timeline.md), nothing is computed for padding, and a command-line
run lets go of the other region shapes when it starts (``release_region_shapes``); ``region_height`` can fix
their height too (one shape per backbone), at a cost in accuracy on real clips (docs/timeline.md). Only
the frames of the windows being read are held (a few dozen at most), and only their evidence is kept. The segmentation
(engine.pipeline.segments) weighs each frame by the video it stands for, so a coarse sample counts as the frames it
stands in for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.models.embedders import timeline_regions
from engine.models.protocols import Embedder, Ensemble, Exported, Releasable, base_of
from engine.pipeline.regions import detect_frames
from engine.pipeline.segments import NO_PRODUCT, FrameEvidence
from engine.types import CONFIDENT_RELATIVE_MARGIN, Detections, Frame, FrameVote

# Two frames look alike when their THUMB grey thumbnails correlate by at least 1 - LOOK_ALIKE (a change of light or
# a small move keeps them alike; measured 1 - correlation: 0.02-0.16 between frames 8 s apart in a dev clip or a part
# of the bench's video, 0.30-0.64 across a cut between parts, 0.45-0.51 between dev clips 000117 and 000134).
LOOK_ALIKE = 0.25
SAME_FRAME = 2.0  # mean absolute difference (0-255) of two thumbnails under which a frame reuses the other's detection
THUMB = (16, 16)
# A frame is sure of its product when the lead over the next is at least this share of its lead over the median
# product (the clip verdict's confident margin): 0.3-0.6 in most frames of the bench's video; 0.02-0.35 in the
# frames of dev clip 000117, where 012814 is close behind. Between two coarse samples of the same product where
# either is unsure, frames are matched every ``dense_s``, as evenly spaced sampling does.
SURE_LEAD = CONFIDENT_RELATIVE_MARGIN
# A step between neighbouring grid frames is a cut where it alone does not look alike, or where it is at least
# CUT_STEP and CUT_STANDS_OUT times every other step between the two samples (the bench's video: 0.21 between two of
# its parts whose thumbnails look alike, 0.00-0.02 between the other grid frames of those 8 s)
CUT_STEP = 0.1
CUT_STANDS_OUT = 4.0
SAME_BOX_IOU = 0.6  # two frames whose main person boxes overlap this much show the person in the same place


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey float32 thumbnail of an RGB frame, for ``difference``."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (0-255)."""
    return float(np.mean(np.abs(a - b)))


def dissimilarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 - the correlation of two thumbnails (0: alike up to brightness and contrast; 1 and more: unrelated)."""
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return 1.0 - float((a * b).sum()) / norm if norm > 1e-6 else float(difference(a, b) > SAME_FRAME)


def same_box(a: Detections | None, b: Detections | None, at_least: float = SAME_BOX_IOU) -> bool:
    """Whether two frames' most confident detected boxes overlap by at least ``at_least`` (intersection over union);
    False when either frame has no detected box (only the whole frame)."""
    if a is None or b is None or not len(a) or not len(b) or "whole-frame" in (a.source, b.source):
        return False
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = (d.boxes[int(np.argmax(d.scores))] for d in (a, b))
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return bool(union > 0 and inter / union >= at_least)


def frame_lead(vote: FrameVote) -> float:
    """A frame's best product's lead over the next, as a share of its lead over the frame's median product (1: far
    ahead of the rest; 0: tied with the next)."""
    sims = sorted(vote.product_similarity.values(), reverse=True)
    if len(sims) < 2:
        return 1.0
    spread = sims[0] - float(np.median(sims))
    return (sims[0] - sims[1]) / spread if spread > 1e-9 else 0.0


def frame_label(evidence: FrameEvidence, none_below: float) -> str:
    """What a frame shows on its own: its best product, or NO_PRODUCT when no product reaches ``none_below``."""
    if not evidence.similarity:
        return NO_PRODUCT
    pid, sim = max(evidence.similarity.items(), key=lambda kv: kv[1])
    return pid if sim >= none_below else NO_PRODUCT


def release_region_shapes(embedder: Embedder, height: int = 0, rows: int = 0) -> None:
    """Drop the compiled region shapes of the embedder's OpenVINO backbones that a timeline's regions (``rows`` a
    batch, 0: the backbone's ``region_batch``; at ``height``, 0: any) do not run in; their crops' shapes stay. A run
    then holds its own shapes only, whatever clips were matched before (the disk cache keeps the others)."""
    base = base_of(embedder)
    for member in base.members if isinstance(base, Ensemble) else [base]:
        if isinstance(member, Exported) and isinstance(member.backbone, Releasable):
            crop_hw, n = tuple(member.input_hw), rows or member.backbone.region_batch
            member.backbone.release(lambda shape, crop_hw=crop_hw, n=n: len(shape) == 4 and (
                tuple(shape[2:]) == crop_hw or (shape[0] == n and (not height or shape[2] == height))))


@dataclass
class _Point:
    """A grid frame of the windows being read (``frame`` None once let go), matched or not yet."""

    frame: Frame | None
    thumb: np.ndarray
    vote: FrameVote | None = None
    dets: Detections | None = None
    label: str = NO_PRODUCT
    sure: bool = False


class CoarseToFine:
    """Matches the frames of a grid reader (``next_frames(n)``, ``ended``) coarse to fine: each ``next()`` reads
    ``windows`` coarse windows of grid frames and returns the frames it matched and their votes, in time order."""

    def __init__(self, engine, reader, coarse_s: float, fine_s: float, windows: int = 4, keep: int = 20,
                 none_below: float = 0.72, examples=None, dense_s: float = 2.0, region_height: int = 0,
                 region_rows: int = 0, halve: bool = False, locate: bool = True,
                 skip: bool = False) -> None:
        self.engine, self.reader = engine, reader
        self.per = max(2, int(round(coarse_s / fine_s)))  # grid frames per coarse window
        self.dense = max(1, int(round(dense_s / fine_s)))  # grid frames between frames where the answer is unclear
        self.windows = max(1, int(windows))
        self.keep, self.none_below = keep, none_below
        self.examples = examples
        self.region_height = region_height  # every region's height in the embedder's pass (0: by its aspect)
        self.region_rows = region_rows  # the rows its batches of regions run in (0: the backbone's own)
        # at a change, a frame every dense step first, then the grid frames where the label flips: fewer frames, but
        # it lost a dev join (docs/timeline.md), so off
        self.halve = halve
        self.locate = locate  # a change between sure frames with one cut between them: the frames either side of it
        self.located = 0  # cuts looked at (a half may be located again: at least the changes found at a cut)
        # the first coarse sample of a read is not matched when the frame before the read (the anchor) and the coarse
        # sample after it are sure of the same product, look alike and no grid frame between them differs from its
        # neighbour (no cut); it is decided from the anchor, so where the anchor is unsure nothing changes
        self.skip = skip
        self.skipped = 0  # coarse samples not matched
        self.anchor: _Point | None = None  # the last matched frame of the windows before
        self.grid_frames = 0  # grid frames read
        self.matched = 0  # frames matched
        self.reused = 0  # detections reused
        self.read_until_s = 0.0  # stream time of the last grid frame read

    def next(self) -> tuple[list[Frame], list[FrameVote]]:
        need = self.per * self.windows + (0 if self.anchor is not None else 1)
        frames = self.reader.next_frames(need)
        self.grid_frames += len(frames)
        if not frames:
            return [], []
        self.read_until_s = frames[-1].time_s
        points = ([self.anchor] if self.anchor is not None else []) + [_Point(f, thumbnail(f.image)) for f in frames]
        last = len(points) - 1
        coarse = sorted(set(range(0, last, self.per)) | {last})
        held = []  # ``skip``: the first coarse sample after a sure anchor, where nothing changes to the one after it
        if self.skip and self.anchor is not None and self.anchor.sure and len(coarse) > 2 and all(
                dissimilarity(points[i].thumb, points[j].thumb) <= LOOK_ALIKE
                for i, j in [(0, coarse[2]), *((k, k + 1) for k in range(coarse[2]))]):
            held = [coarse[1]]
        self._match(points, [i for i in coarse if points[i].vote is None and i not in held])
        for m in held:  # not matched where the samples either side show the same product, both sure of it
            if self._steady(points, 0, coarse[2]):
                self.skipped += 1
                coarse.remove(m)
            else:
                self._match(points, [m])
        pending = list(zip(coarse[:-1], coarse[1:]))
        while pending:  # a few rounds: frames every dense step or half-way, then the fills between those that differ
            todo, nxt = set(), []
            for a, b in pending:
                if b - a <= 1:
                    continue
                changed = points[a].label != points[b].label
                cut = self._cut(points, a, b) if changed else None
                if cut is not None:  # a change at a cut between sure frames: the two frames either side of it
                    todo.update(i for i in (cut, cut + 1) if a < i < b)
                    nxt += [(a, cut), (cut + 1, b)]
                    self.located += 1
                elif changed and (b - a <= self.dense + 1 or not self.halve):
                    todo.update(range(a + 1, b))  # a change: every grid frame between, in one batch
                elif changed or not (points[a].sure and points[b].sure):
                    # a change (``halve``) or unclear: a frame every dense step, then the fills between those that
                    # differ
                    inner = list(range(a + self.dense, b, self.dense))
                    todo.update(inner)
                    if inner:
                        nxt += list(zip([a, *inner], [*inner, b]))
                elif b - a >= self.per and self._differ(points[a], points[b], True):
                    m = (a + b) // 2
                    todo.add(m)
                    nxt += [(a, m), (m, b)]
            self._match(points, sorted(i for i in todo if points[i].vote is None))
            pending = nxt
        done = [(p.frame, p.vote) for p in points[1 if self.anchor is not None else 0:]
                if p.vote is not None and p.frame is not None]  # a matched point keeps its frame until here
        self.anchor = points[last]
        self.anchor.frame = None  # its evidence, thumbnail and detection stay; the image goes
        return [frame for frame, _ in done], [vote for _, vote in done]

    def _steady(self, points: list[_Point], a: int, b: int) -> bool:
        """Whether two matched frames ``a`` < ``b`` show the same product, both sure of it, with no cut between them:
        every pair of neighbouring grid frames between them, and the two, look alike (``skip``)."""
        pa, pb = points[a], points[b]
        if pa.vote is None or pb.vote is None or pa.label != pb.label or not (pa.sure and pb.sure):
            return False
        return dissimilarity(pa.thumb, pb.thumb) <= LOOK_ALIKE and all(
            dissimilarity(points[i].thumb, points[i + 1].thumb) <= LOOK_ALIKE for i in range(a, b))

    def _cut(self, points: list[_Point], a: int, b: int) -> int | None:
        """Where two sure matched frames of different labels ``a`` < ``b`` have one cut between them (``locate``): the
        grid frame ``k`` before the only pair of neighbours ``k``, ``k + 1`` that do not look alike (every other pair
        between ``a`` and ``b`` does), or whose step stands out (``CUT_STEP``, ``CUT_STANDS_OUT``); None when they are
        not both sure, or there is no such step."""
        if not self.locate or b - a <= 2 or not (points[a].sure and points[b].sure):
            return None
        steps = [dissimilarity(points[i].thumb, points[i + 1].thumb) for i in range(a, b)]
        k = int(np.argmax(steps))
        top, rest = steps[k], max(steps[:k] + steps[k + 1:], default=0.0)
        if (top > LOOK_ALIKE >= rest) or (top >= CUT_STEP and top >= CUT_STANDS_OUT * rest):
            return a + k
        return None

    def _differ(self, a: _Point, b: _Point, whole_window: bool) -> bool:
        """Whether to look between two matched frames: their labels differ, or (a whole coarse window apart) they
        neither look alike nor show the person in the same place."""
        if a.label != b.label:
            return True
        return whole_window and dissimilarity(a.thumb, b.thumb) > LOOK_ALIKE and not same_box(a.dets, b.dets)

    def _match(self, points: list[_Point], todo: list[int]) -> None:
        """Match the points ``todo`` in one batch. A point that barely differs (``SAME_FRAME``) from one of the two
        nearest points already matched or being detected reuses that point's detection."""
        if not todo:
            return
        detected, source = [], {}
        for i in todo:
            known = [j for j, p in enumerate(points) if p.dets is not None] + detected
            near = sorted((abs(j - i), j) for j in known)
            same = next((j for _, j in near[:2] if difference(points[j].thumb, points[i].thumb) < SAME_FRAME), None)
            if same is None:
                detected.append(i)
            else:
                source[i] = same
        for i, dets in zip(detected, detect_frames(self.engine.detector, [points[i].frame for i in detected],
                                                     self.engine.settings.detection)):
            points[i].dets = dets
        self.reused += len(source)
        with timeline_regions(self.region_height, self.region_rows):
            votes = self.engine.frame_evidence([points[i].frame for i in todo], self.examples,
                                               dets=[points[source.get(i, i)].dets for i in todo])
        for i, vote in zip(todo, votes):
            p = points[i]
            p.vote, p.dets = vote, points[source.get(i, i)].dets
            p.label = frame_label(FrameEvidence.of(vote, self.keep), self.none_below)
            p.sure = p.label == NO_PRODUCT or frame_lead(vote) >= SURE_LEAD
        self.matched += len(todo)
