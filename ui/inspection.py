"""What the Inspect page compares, computed from an evaluation report (plain Python, no Streamlit).

For every sampled frame of a clip: the query region that decided the frame's vote, the catalogue region of the
product it voted for, and the catalogue region of the true product (its best neighbour in that frame when it is
among the region's candidates, else its cover image), each with its similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from engine.geometry import Box
from engine.types import ClipOutcome, FrameVote, Neighbour, RegionMatch


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
    source: str = ""  # the matched region's source ("livestream correction" for a livestream example)


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


def _best_for(regions: Sequence[RegionMatch], product_id: str | None) -> tuple[RegionMatch | None, Neighbour | None]:
    """The (region, neighbour) pair with the highest similarity to a product, over all regions of a frame."""
    best: tuple[float, RegionMatch | None, Neighbour | None] = (-2.0, None, None)
    if product_id is None:
        return None, None
    for r in regions:
        for n in r.neighbours:
            if n.product_id == product_id and n.similarity > best[0]:
                best = (n.similarity, r, n)
    return best[1], best[2]


def _side(product: str, frame: FrameVote, regions: Sequence[RegionMatch], products: Mapping[str, ProductInfo],
          voted: bool) -> Side:
    _, nb = _best_for(regions, product)
    fallback = frame.vote_similarity if voted else frame.product_similarity.get(product)
    return Side(product, nb.similarity if nb else fallback,
                nb.image_path if nb else (products[product].cover if product in products else None),
                nb.box if nb else None, nb is not None, nb.region.source if nb else "")


def compare_frame(frame: FrameVote, truth: str | None, products: Mapping[str, ProductInfo]) -> FrameComparison:
    voted = frame.voted_product
    region, _ = _best_for(frame.regions, voted)
    if region is None and frame.regions:
        region = frame.regions[0]
    chosen = _side(voted, frame, frame.regions, products, True) if voted else Side(None, None, None, None, False)
    truth_side = _side(truth, frame, frame.regions, products, False) if truth is not None else None
    query_box = (region.match_box or region.box) if region is not None else None
    return FrameComparison(frame.frame_index, frame.time_s, query_box, _category(frame, region, products),
                           chosen, truth_side)


def _category(frame: FrameVote, region: RegionMatch | None, products: Mapping[str, ProductInfo]) -> str:
    """A frame's category, consistent with its vote: that of the catalogue region the voted product matched with,
    else the voted product's own; the region's k-NN label only when the frame voted for nothing."""
    voted = frame.voted_product
    if voted is None:
        return region.category if region is not None else ""
    _, nb = _best_for(frame.regions, voted)
    if nb is not None and nb.region.category:
        return nb.region.category
    return products[voted].category if voted in products else ""


def compare_clip(outcome: ClipOutcome, products: Mapping[str, ProductInfo]) -> ClipComparison:
    frames = tuple(compare_frame(f, outcome.truth, products) for f in outcome.result.frames)
    n = int(outcome.result.settings.get("frames", len(frames)) or len(frames))
    return ClipComparison(outcome.video_id, outcome.truth, outcome.top, outcome.truth_rank, frames, n)


def visible_frames(clip: ClipComparison, errors_only: bool) -> tuple[FrameComparison, ...]:
    """All frames, or only those whose vote missed the true product."""
    return tuple(f for f in clip.frames if not errors_only or not f.correct)
