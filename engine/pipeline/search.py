"""Search and re-ranking: a region's windows fetch Annoy candidates, candidate products are re-ranked exactly,
and a region's garment category comes from a similarity-weighted k-NN over the catalogue (Pailitao)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from engine.categories import merged
from engine.config import SearchSettings
from engine.index.store import ProductIndex
from engine.types import RegionMatch, RegionRef


@dataclass(frozen=True)
class RegionPlan:
    """What is searched for one detected region: its garment windows and, from the garment head,
    a merged category per window (empty without one)."""

    box: tuple[float, ...]
    windows: list[tuple[float, ...]]
    categories: list[dict[str, float]]  # per window: merged category -> probability


def knn_category_scores(hits: list[tuple[int, float]], items: list[RegionRef], k: int = 5,
                        temperature: float = 0.05, merge: bool = False) -> dict[str, float]:
    """Category by similarity-weighted k-NN over the catalogue's labelled regions (Pailitao): the k
    nearest regions vote for their category with weight exp((similarity - best) / temperature).
    Returns normalised scores per label (per merged class with ``merge``)."""
    weights: dict[str, float] = defaultdict(float)
    top = sorted(hits, key=lambda h: -h[1])[:k]
    for i, sim in top:
        cat = items[i].category if i < len(items) else ""
        if cat:
            weights[merged(cat) if merge else cat] += float(np.exp((sim - top[0][1]) / temperature))
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()} if total else {}


def knn_category(hits: list[tuple[int, float]], items: list[RegionRef]) -> str:
    """The most likely catalogue label of a query from its neighbours ("" without labelled neighbours)."""
    scores = knn_category_scores(hits, items)
    return max(scores, key=scores.get) if scores else ""  # type: ignore[arg-type]


def fuse_categories(head: dict[str, float], knn: dict[str, float]) -> str:
    """The merged category with the highest mean of the head's and the k-NN's probabilities."""
    classes = set(head) | set(knn)
    return max(sorted(classes), key=lambda c: head.get(c, 0.0) + knn.get(c, 0.0)) if classes else ""


def search_region(index: ProductIndex, plan: RegionPlan, vectors: np.ndarray, score: float, label: str,
                  s: SearchSettings, search_k: int = -1) -> tuple[RegionMatch, dict[str, float]]:
    """Search a detected region through its garment windows.

    Each window fetches Annoy candidates; the union of candidate products is then re-ranked
    exactly: a product's similarity is its best cosine over (window, catalogue region) pairs.
    With window categories (from the garment head) and ``category_weight`` > 0, pairs whose
    catalogue region has another merged category lose ``category_weight`` of similarity.
    Returns the region's match and every candidate product's similarity.
    """
    hits_per_window = [index.search(v, s.neighbours, search_k, shop=s.shop or None) for v in vectors]
    candidates = list(dict.fromkeys(index.items[i].product_id for hits in hits_per_window for i, _ in hits))
    penalty = s.category_weight if plan.categories else 0.0
    fused = [fuse_categories(head if s.category_source != "knn" else {},
                             knn_category_scores(hits, index.items, merge=True) if s.category_source != "head" else {})
             for head, hits in zip(plan.categories, hits_per_window)]
    best: dict[str, tuple[float, int, int]] = {}  # product -> (similarity, catalogue item, window)
    for pid, (sims, items) in index.product_similarities(vectors, candidates).items():
        if penalty:
            other = np.array([[merged(index.items[j].category) != c for j in items] for c in fused])
            sims = sims - penalty * other
        w, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        best[pid] = (float(sims[w, j]), int(items[j]), int(w))
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
    top_window = ranked[0][1][2] if ranked else 0
    neighbours = tuple(index.neighbour(item, sim) for _, (sim, item, _) in ranked[: s.region_candidates])
    category = knn_category(hits_per_window[top_window], index.items) if hits_per_window else ""
    if fused:
        category = fused[top_window]
    region = RegionMatch(plan.box, score, label, category, neighbours,
                         match_box=plan.windows[top_window] if plan.windows else None)
    return region, {pid: sim for pid, (sim, _, _) in best.items()}
