"""Votes and evidence across frames: each sampled frame votes for the product it matches best and records every
candidate product's best similarity. Products are ranked by their evidence summed over the frames (a frame's best
similarity to the product, averaged over the sampled frames), then by votes (``rank_by="similarity"``, the
default), or by votes first (``rank_by="votes"``, one vote per frame, the earlier rule)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from engine.types import FrameVote, Neighbour, ProductScore, RegionMatch


def frame_vote(index: int, time_s: float, regions: list[RegionMatch], per_product: dict[str, float],
               source: str, member_similarity: tuple[dict[str, float], ...] = ()) -> FrameVote:
    """A frame's vote: the product with the highest similarity over its regions, and its margin over the next
    (``member_similarity``: each ensemble member's own per-product similarities, kept for the verdict)."""
    ordered = sorted(per_product.values(), reverse=True)
    voted = max(per_product, key=lambda p: per_product[p]) if per_product else None
    margin = ordered[0] - ordered[1] if len(ordered) > 1 else (ordered[0] if ordered else 0.0)
    return FrameVote(index, round(time_s, 3), tuple(regions), voted,
                     round(per_product.get(voted, 0.0), 4) if voted else 0.0, source,
                     {k: round(v, 4) for k, v in per_product.items()}, round(margin, 4),
                     tuple({k: round(v, 4) for k, v in m.items()} for m in member_similarity))


def rank(frames: list[FrameVote], products: dict[str, dict[str, Any]], rank_by: str = "similarity") -> list[ProductScore]:
    """Every product that any frame found, ranked by summed evidence then votes (or votes then evidence), then id."""
    votes = Counter(f.voted_product for f in frames if f.voted_product)
    sims: dict[str, list[float]] = defaultdict(list)
    support: dict[str, list[int]] = defaultdict(list)
    best: dict[str, Neighbour] = {}
    for f in frames:
        for region in f.regions:
            for nb in region.neighbours:
                if nb.product_id not in best or nb.similarity > best[nb.product_id].similarity:
                    best[nb.product_id] = nb
        for pid, sim in f.product_similarity.items():
            sims[pid].append(sim)
        if f.voted_product:
            support[f.voted_product].append(f.frame_index)
    n = max(1, len(frames))
    scores = [
        ProductScore(
            pid, str(products.get(pid, {}).get("name", pid)), votes.get(pid, 0), round(votes.get(pid, 0) / n, 4),
            round(max(s), 4), round(float(np.sum(s)) / n, 4), tuple(support.get(pid, ())),
            (products.get(pid, {}).get("images") or [None])[0],
            best[pid].image_path if pid in best else None, best[pid].box if pid in best else None,
        )
        for pid, s in sims.items()
    ]
    if rank_by == "votes":
        scores.sort(key=lambda p: (-p.votes, -p.mean_similarity, p.product_id))
    else:
        scores.sort(key=lambda p: (-p.mean_similarity, -p.votes, p.product_id))
    return scores
