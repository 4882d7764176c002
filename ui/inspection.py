"""What the Inspect page compares, computed from an evaluation report (plain Python, no Streamlit).

For every sampled frame of a clip: the query region that decided the frame's vote, the catalogue region of the
product it voted for, and the catalogue region of the true product (its best neighbour in that frame when it is
among the region's candidates, else its cover image), each with its similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from engine.evaluate import ClipOutcome

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ProductInfo:
    name: str
    category: str
    cover: str | None


@dataclass(frozen=True)
class Side:
    """One product's side of a comparison: the catalogue image region that matched, and how well."""

    product_id: str | None
    similarity: float | None
    image_path: str | None
    box: Box | None
    from_neighbours: bool  # False: the product was not among the region's candidates; cover image shown


@dataclass(frozen=True)
class FrameComparison:
    frame_index: int
    time_s: float
    query_box: Box | None
    category: str
    chosen: Side
    truth: Side | None  # None when the clip has no true product in the catalogue

    @property
    def correct(self) -> bool:
        return self.truth is not None and self.chosen.product_id == self.truth.product_id


@dataclass(frozen=True)
class ClipComparison:
    video_id: str
    truth: str | None
    top: str | None
    truth_rank: int | None
    frames: tuple[FrameComparison, ...]
    n_frames_setting: int

    @property
    def correct(self) -> bool:
        return self.truth_rank == 1


def _box(raw: Any) -> Box | None:
    return tuple(float(v) for v in raw) if raw else None  # type: ignore[return-value]


Json = dict[str, Any]


def _best_for(regions: list[Json], product_id: str | None) -> tuple[Json | None, Json | None]:
    """The (region, neighbour) pair with the highest similarity to a product, over all regions of a frame."""
    best: tuple[float, dict[str, Any] | None, dict[str, Any] | None] = (-2.0, None, None)
    if product_id is None:
        return None, None
    for r in regions:
        for n in r.get("neighbours", []):
            if n.get("product_id") == product_id and float(n.get("similarity", -1.0)) > best[0]:
                best = (float(n["similarity"]), r, n)
    return best[1], best[2]


def compare_frame(frame: Mapping[str, Any], truth: str | None, products: Mapping[str, ProductInfo]) -> FrameComparison:
    regions = list(frame.get("regions", []))
    voted = frame.get("voted_product")
    region, chosen_n = _best_for(regions, voted)
    if region is None and regions:
        region = regions[0]
    chosen = Side(
        voted,
        float(chosen_n["similarity"]) if chosen_n else (float(frame.get("vote_similarity", 0.0)) if voted else None),
        chosen_n.get("image_path") if chosen_n else (products[voted].cover if voted in products else None),
        _box(chosen_n.get("box")) if chosen_n else None,
        chosen_n is not None,
    )
    truth_side = None
    if truth is not None:
        _, truth_n = _best_for(regions, truth)
        sims = frame.get("product_similarity", {}) or {}
        truth_side = Side(
            truth,
            float(truth_n["similarity"]) if truth_n else (float(sims[truth]) if truth in sims else None),
            truth_n.get("image_path") if truth_n else (products[truth].cover if truth in products else None),
            _box(truth_n.get("box")) if truth_n else None,
            truth_n is not None,
        )
    query_box = None
    if region is not None:
        query_box = _box(region.get("match_box")) or _box(region.get("box"))
    return FrameComparison(
        int(frame.get("frame_index", 0)),
        float(frame.get("time_s", 0.0)),
        query_box,
        str(region.get("category", "")) if region else "",
        chosen,
        truth_side,
    )


def compare_clip(outcome: ClipOutcome, products: Mapping[str, ProductInfo]) -> ClipComparison:
    result = outcome.result or {}
    frames = tuple(compare_frame(f, outcome.truth, products) for f in result.get("frames", []))
    n = int((result.get("settings") or {}).get("frames", len(frames)) or len(frames))
    return ClipComparison(outcome.video_id, outcome.truth, outcome.top, outcome.truth_rank, frames, n)


def visible_frames(clip: ClipComparison, errors_only: bool) -> tuple[FrameComparison, ...]:
    """All frames, or only those whose vote missed the true product."""
    return tuple(f for f in clip.frames if not errors_only or not f.correct)
