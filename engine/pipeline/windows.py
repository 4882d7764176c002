"""Garment-level windows inside a detected person (or whole-frame) region, and one class per way of searching
them (whole regions, exhaustive, refined, pooled, hybrid, learned, body regions, hybrid with body regions).

COCO detectors find people, not garments; a catalogue annotates garments. Comparing a whole person
with a photo of a skirt mixes in the top, the legs and the background. Each detected region is
therefore searched through a small set of horizontal bands at several heights and positions, which
together cover where a top, a skirt, a dress or trousers can sit on a standing or seated person.
Each band is compared with the catalogue's garment regions and the best pair wins: a search over
garment positions, instead of a fixed guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engine.config import Settings, Windows
from engine.errors import ModelError
from engine.geometry import BAND_STRIDE, Box, as_box, band_fractions, clipped, garment_windows, pose_regions, relative
from engine.io.images import crop
from engine.models import get_garment_head, get_pose_estimator
from engine.models.garments import GarmentHead, window_geometry
from engine.models.pose import PoseEstimator
from engine.models.protocols import BandPooler, Embedder, base_of, pools_bands
from engine.types import Frame


@dataclass(frozen=True)
class QueryRegion:
    """A detected region of a frame (or the whole frame when nothing was detected)."""

    frame: Frame
    box: Box
    whole: bool


@dataclass(frozen=True)
class WindowPlan:
    """For each region: the windows searched, their category distributions (garment head only, else empty
    lists) and one vector per window, rows in (region, window) order."""

    windows: list[list[Box]]
    categories: list[list[dict[str, float]]]
    vectors: np.ndarray


class WindowStrategy(Protocol):
    def plan(self, regions: list[QueryRegion]) -> WindowPlan: ...


class NearestSearch(Protocol):
    """What the refined windows need of an index (engine.index.store.ProductIndex): (item id, similarity) hits."""

    def search(self, vector: np.ndarray, k: int) -> list[tuple[Any, float]]: ...


def _cropped(embedder: Embedder, regions: list[QueryRegion], windows: list[list[Box]], batch: int) -> WindowPlan:
    crops = [crop(r.frame.image, w) for r, ws in zip(regions, windows) for w in ws]
    return WindowPlan(windows, [[] for _ in regions], embedder.embed(crops, batch))


@dataclass(frozen=True)
class WholeRegions:
    """The detected region alone: the plain baseline."""

    embedder: Embedder
    batch: int

    def plan(self, regions: list[QueryRegion]) -> WindowPlan:
        return _cropped(self.embedder, regions, [[r.box] for r in regions], self.batch)


@dataclass(frozen=True)
class ExhaustiveWindows:
    """Every garment window cropped and embedded: accurate, the slowest. ``stride`` spaces the windows (the default
    0.2 gives 10 per region; 0.1, the full set the garment head and pooling use, 18: same development-set
    rankings at 1.8x the crops, see the README's Results)."""

    embedder: Embedder
    batch: int
    stride: float = BAND_STRIDE

    def plan(self, regions: list[QueryRegion]) -> WindowPlan:
        windows = [garment_windows(r.box, stride=self.stride) for r in regions]
        return _cropped(self.embedder, regions, windows, self.batch)


@dataclass(frozen=True)
class PooledWindows:
    """Every garment window pooled from one forward pass per region (regional pooling of the feature map)."""

    embedder: BandPooler

    def pooled(self, regions: list[QueryRegion]) -> np.ndarray:
        """(regions, windows, dim)."""
        return self.embedder.embed_bands([crop(r.frame.image, r.box) for r in regions], band_fractions())

    def plan(self, regions: list[QueryRegion]) -> WindowPlan:
        vectors = self.pooled(regions).reshape(-1, self.embedder.dim)
        return WindowPlan([garment_windows(r.box) for r in regions], [[] for _ in regions], vectors)


@dataclass(frozen=True)
class HybridWindows:
    """The region itself cropped and embedded exactly, its garment bands pooled from one forward pass per region:
    one pass and one crop per region. The two views complement each other: the exact crop is what the catalogue's
    boxes look like after the same resize, the pooled bands keep the region's proportions. On the development set it
    ranks as the 10 exhaustive windows do at about a third of their work (docs/accuracy.md)."""

    embedder: BandPooler
    batch: int

    def plan(self, regions: list[QueryRegion]) -> WindowPlan:
        vectors = PooledWindows(self.embedder).pooled(regions)
        if len(regions):
            vectors[:, 0] = self.embedder.embed([crop(r.frame.image, r.box) for r in regions], self.batch)
        return WindowPlan([garment_windows(r.box) for r in regions], [[] for _ in regions],
                          vectors.reshape(-1, self.embedder.dim))


@dataclass(frozen=True)
class RefinedWindows:
    """Every window pooled (coarse), then the region itself and its ``top`` best windows, ranked by their
    nearest catalogue similarity, cropped and embedded exactly."""

    embedder: BandPooler
    index: NearestSearch
    top: int
    batch: int

    def plan(self, regions: list[QueryRegion]) -> WindowPlan:
        coarse = PooledWindows(self.embedder).pooled(regions)
        chosen: list[list[Box]] = []
        for r, vecs in zip(regions, coarse):
            ws = garment_windows(r.box)
            nearest = [self.index.search(v, 1) for v in vecs[1:]]
            best = [hits[0][1] if hits else -1.0 for hits in nearest]
            top = sorted(1 + int(i) for i in np.argsort(best)[::-1][: self.top])
            chosen.append([ws[0]] + [ws[i] for i in top])
        return _cropped(self.embedder, regions, chosen, self.batch)


@dataclass(frozen=True)
class LearnedWindows:
    """The garment head's ``top`` boxes per region, each with a category distribution, from one forward pass
    per region; the boxes are then cropped and embedded, or (``pooled``) pooled from that same pass."""

    embedder: BandPooler  # its base pools bands (a projection head: the head's base)
    base: BandPooler
    head: GarmentHead
    top: int
    pooled: bool
    batch: int

    def plan(self, regions: list[QueryRegion]) -> WindowPlan:
        emb, base = self.embedder, self.base
        boxes = [clipped(r.box, r.frame.image.shape[:2]) for r in regions]
        fmaps = base.feature_maps([crop(r.frame.image, b) for r, b in zip(regions, boxes)])
        bands = [(0.0, y0, 1.0, y1) for y0, y1 in band_fractions()]
        windows, categories, pooled = [], [], []
        for r, box, fmap in zip(regions, boxes, fmaps):
            found = self.head.detect(garment_windows(box), base.pool_boxes(fmap, bands),
                                     window_geometry(box, r.frame.image.shape[:2], r.whole), self.top)
            windows.append([as_box(b) for b in found.boxes])
            categories.append(list(found.classes))
            if self.pooled:  # pooled from the region's feature map: no second pass
                pooled.append(emb.pool_boxes(fmap, [relative(b, box) for b in windows[-1]]))
        if not self.pooled:
            return WindowPlan(windows, categories, _cropped(emb, regions, windows, self.batch).vectors)
        vectors = np.concatenate(pooled) if pooled else np.zeros((0, emb.dim), np.float32)
        return WindowPlan(windows, categories, vectors)


def _bodies(pose: PoseEstimator, regions: list[QueryRegion]) -> dict[int, list[Box]]:
    """Region number -> its three body regions (upper, lower, full), for the regions whose keypoints were found."""
    found: dict[int, list[Box]] = {}
    for k, r in enumerate(regions):
        (kp,) = pose.keypoints(r.frame.image, [r.box])
        body = None if kp is None else pose_regions(r.box, kp.xy, kp.scores)
        if body is not None:
            found[k] = list(body)
    return found


def _bands(embedder: Embedder, batch: int, stride: float) -> WindowStrategy:
    """The fixed bands: the hybrid windows, or every band cropped (at ``stride``, as ``--window-stride`` says) for an
    embedder without feature maps."""
    return HybridWindows(embedder, batch) if pools_bands(embedder) else ExhaustiveWindows(embedder, batch, stride)


def _per_region(plan: WindowPlan) -> list[tuple[list[Box], np.ndarray]]:
    rows = np.cumsum([0] + [len(ws) for ws in plan.windows])
    return [(ws, plan.vectors[a:b]) for ws, a, b in zip(plan.windows, rows[:-1], rows[1:])]


def _joined(parts: list[tuple[list[Box], np.ndarray]], dim: int) -> WindowPlan:
    vectors = np.concatenate([v for _, v in parts]) if parts else np.zeros((0, dim), np.float32)
    return WindowPlan([w for w, _ in parts], [[] for _ in parts], vectors)


@dataclass(frozen=True)
class PoseWindows:
    """The region and three garment regions from its body keypoints (upper body, lower body, full body: see
    engine.geometry.pose_regions), each cropped and embedded exactly: 4 crops per person instead of the 18 windows. A
    region whose shoulders or hips are not found (a garment close-up, a person from behind in poor light) falls back
    to the fixed bands: the hybrid windows (the region exact, its bands pooled), or every band cropped for an
    embedder without feature maps."""

    embedder: Embedder
    pose: PoseEstimator
    batch: int
    stride: float = BAND_STRIDE  # the fallback's, for an embedder without feature maps

    def plan(self, regions: list[QueryRegion]) -> WindowPlan:
        found = _bodies(self.pose, regions)
        posed = list(found)
        rest = [k for k in range(len(regions)) if k not in found]
        parts: dict[int, tuple[list[Box], np.ndarray]] = {}
        if posed:
            windows = [[regions[k].box, *found[k]] for k in posed]
            plan = _cropped(self.embedder, [regions[k] for k in posed], windows, self.batch)
            parts.update(zip(posed, _per_region(plan)))
        if rest:
            parts.update(zip(rest, _per_region(_bands(self.embedder, self.batch, self.stride).plan([regions[k] for k in rest]))))
        return _joined([parts[k] for k in range(len(regions))], self.embedder.dim)


@dataclass(frozen=True)
class HybridPoseWindows:
    """The hybrid windows (the region exact, its 17 bands pooled) and, beside them, the three body regions from its
    keypoints (PoseWindows), cropped and embedded exactly: 4 crops and one pass per person. Where no shoulders or hips
    are found, the hybrid windows alone. The bands keep what the body regions lose on some clips, the body regions
    add a garment's own extent (docs/accuracy.md, fourth pass)."""

    embedder: Embedder
    pose: PoseEstimator
    batch: int
    pooled: bool = False  # the body regions pooled from the bands' pass instead of cropped: the default's crops only
    stride: float = BAND_STRIDE  # the fixed bands', for an embedder without feature maps

    def plan(self, regions: list[QueryRegion]) -> WindowPlan:
        found = _bodies(self.pose, regions)
        if self.pooled and pools_bands(self.embedder):
            return self._pooled(self.embedder, regions, found)
        bands = _per_region(_bands(self.embedder, self.batch, self.stride).plan(regions))
        posed = list(found)
        body: dict[int, np.ndarray] = {}
        if posed:
            people = [regions[k] for k in posed]
            plan = _cropped(self.embedder, people, [found[k] for k in posed], self.batch)
            body = {k: v for k, (_, v) in zip(posed, _per_region(plan))}
        parts = [(ws + found[k], np.concatenate([v, body[k]])) if k in found else (ws, v)
                 for k, (ws, v) in enumerate(bands)]
        return _joined(parts, self.embedder.dim)

    def _pooled(self, emb: BandPooler, regions: list[QueryRegion], found: dict[int, list[Box]]) -> WindowPlan:
        boxes = [clipped(r.box, r.frame.image.shape[:2]) for r in regions]
        fmaps = emb.feature_maps([crop(r.frame.image, b) for r, b in zip(regions, boxes)])
        exact = emb.embed([crop(r.frame.image, r.box) for r in regions], self.batch)
        bands = [(0.0, y0, 1.0, y1) for y0, y1 in band_fractions()]
        parts = []
        for k, (r, box, fmap) in enumerate(zip(regions, boxes, fmaps)):
            body = found.get(k, [])
            vectors = emb.pool_boxes(fmap, bands + [relative(b, box) for b in body])
            vectors[0] = exact[k]  # the region itself exact, as in the hybrid windows
            parts.append((garment_windows(r.box) + body, vectors))
        return _joined(parts, emb.dim)


def strategy_for(settings: Settings, embedder: Embedder, index: NearestSearch) -> WindowStrategy:
    """The window strategy the settings name. With a garment head, ``pooled`` pools its boxes and every other
    strategy but ``whole`` crops them; an embedder without feature maps falls back to cropping every window."""
    s, batch = settings.search, settings.models.batch_size
    if settings.models.garment_model and s.windows != Windows.WHOLE:
        head = get_garment_head(settings.models.garment_model)
        base = base_of(embedder)
        if head.meta.get("base_key") != base.key or not pools_bands(base):
            raise ModelError(f"the garment head was trained on {head.meta.get('base_key')}, not on {base.key}: "
                             "choose the embedder it was trained for, or train one for this embedder")
        return LearnedWindows(embedder, base, head, s.garment_top, s.windows == Windows.POOLED, batch)
    if s.windows == Windows.WHOLE:
        return WholeRegions(embedder, batch)
    if s.windows == Windows.POSE:
        return PoseWindows(embedder, get_pose_estimator(), batch, s.window_stride)
    if s.windows in (Windows.HYBRID_POSE, Windows.HYBRID_POSE_POOLED):
        return HybridPoseWindows(embedder, get_pose_estimator(), batch, s.windows == Windows.HYBRID_POSE_POOLED,
                                 s.window_stride)
    if s.windows == Windows.EXHAUSTIVE or not pools_bands(embedder):
        return ExhaustiveWindows(embedder, batch, s.window_stride)
    if s.windows == Windows.POOLED:
        return PooledWindows(embedder)
    if s.windows == Windows.HYBRID:
        return HybridWindows(embedder, batch)
    return RefinedWindows(embedder, index, s.refine_top, batch)
