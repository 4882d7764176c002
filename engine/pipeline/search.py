"""Search and re-ranking: a region's windows fetch Annoy candidates, candidate products are re-ranked exactly,
and a region's garment category comes from a similarity-weighted k-NN over the catalogue (Pailitao)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from engine.categories import merged
from engine.config import SearchSettings
from engine.geometry import Box
from engine.index.corrections import NO_EXAMPLES, ExampleSet
from engine.index.store import ProductIndex
from engine.pipeline.families import family, family_head
from engine.pipeline.votes import frame_vote
from engine.pipeline.windows import QueryRegion, WindowPlan
from engine.types import Detections, Frame, FrameVote, Neighbour, RegionMatch, RegionRef


@dataclass(frozen=True)
class RegionPlan:
    """What is searched for one detected region: its garment windows and, from the garment head,
    a merged category per window (empty without one)."""

    box: Box
    windows: list[Box]
    categories: list[dict[str, float]]  # per window: merged category -> probability
    score: float = 0.0  # the detector's confidence in the region
    label: str = ""  # the detector's label of the region


@dataclass(frozen=True)
class Query:
    """Decoded frames with their detections, regions and window plan (rows of plan.vectors in region order): what
    is searched (engine.pipeline.engine.query_frames prepares one)."""

    frames: list[Frame]
    dets: list[Detections]
    regions: list[QueryRegion]
    plan: WindowPlan


def search_query(index: ProductIndex, query: Query, s: SearchSettings, search_k: int,
                 members: tuple[tuple[slice, float], ...], examples: ExampleSet = NO_EXAMPLES) -> list[FrameVote]:
    """Every region of every frame searched through its windows; one vote per frame (``members``: the ensemble's
    (slice, weight) of each member, engine.models.ensemble.member_slices)."""
    votes, row, k = [], 0, 0
    plan = query.plan
    for f, d in zip(query.frames, query.dets):
        found, per_product = [], {}
        per_member: list[dict[str, float]] = [{} for _ in members]
        for score, label in zip(d.scores, d.labels):
            n = len(plan.windows[k])
            vectors = plan.vectors[row : row + n]
            region, sims = search_region(index, RegionPlan(query.regions[k].box, plan.windows[k], plan.categories[k],
                                                           float(score), label), vectors, s, search_k, examples)
            row, k = row + n, k + 1
            found.append(region)
            for pid, sim in sims.items():
                per_product[pid] = max(per_product.get(pid, -1.0), sim)
            for mine, theirs in zip(per_member, member_similarities(index, vectors, list(sims), members, s, examples)):
                for pid, sim in theirs.items():
                    mine[pid] = max(mine.get(pid, -1.0), sim)
        votes.append(frame_vote(f.index, f.time_s, found, per_product, d.source, tuple(per_member)))
    return votes


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
    return max(scores, key=lambda label: scores[label]) if scores else ""


def fuse_categories(head: dict[str, float], knn: dict[str, float]) -> str:
    """The merged category with the highest mean of the head's and the k-NN's probabilities."""
    classes = set(head) | set(knn)
    return max(sorted(classes), key=lambda c: head.get(c, 0.0) + knn.get(c, 0.0)) if classes else ""


def search_region(index: ProductIndex, plan: RegionPlan, vectors: np.ndarray, s: SearchSettings, search_k: int = -1,
                  examples: ExampleSet = NO_EXAMPLES) -> tuple[RegionMatch, dict[str, float]]:
    """Search a detected region (``plan``) through its garment windows (their embeddings: ``vectors``).

    Each window fetches Annoy candidates; the union of candidate products is then re-ranked
    exactly: a product's similarity is its best cosine over (window, catalogue region) pairs, or with
    ``product_pooling="mean"`` its best window's mean cosine over the product's catalogue regions.
    Livestream examples (corrections, ``examples``) are few and searched exactly: every product that has some is a
    candidate, and its examples count as its regions (compared in the query domain).
    With window categories (from the garment head) and ``category_weight`` > 0, pairs whose
    catalogue region has another merged category lose ``category_weight`` of similarity.
    Returns the region's match and every candidate product's similarity.
    """
    hits_per_window = [index.search(v, s.neighbours, search_k, shop=s.shop or None) for v in vectors]
    extra = examples.similarities(index.prepare(vectors), s.example_bound) if len(examples) else {}
    if s.shop:  # only that shop's products, examples included
        extra = {pid: v for pid, v in extra.items() if str((index.products.get(pid) or {}).get("shop") or "") == s.shop}
    candidates = list(dict.fromkeys([index.items[i].product_id for hits in hits_per_window for i, _ in hits]
                                    + list(extra)))
    penalty = s.category_weight if plan.categories and s.category_source != "family" else 0.0
    fused = [fuse_categories(head if s.category_source != "knn" else {},
                             knn_category_scores(hits, index.items, merge=True) if s.category_source != "head" else {})
             for head, hits in zip(plan.categories, hits_per_window)]
    head = family_head(index) if s.category_source == "family" and s.category_weight else None
    families = head.predict(vectors) if head is not None else None  # per window, from the learned family head
    best: dict[str, tuple[float, RegionRef, int]] = {}  # product -> (similarity, region, window)
    catalogue = index.product_similarities(vectors, candidates)
    for pid in candidates:
        pairs = _Pairs.of(index, catalogue.get(pid), extra.get(pid), s.example_offset)
        if pairs is None:
            continue
        sims = pairs.sims
        if penalty:
            other = np.array([[merged(pairs.ref(j).category) != c for j in range(sims.shape[1])] for c in fused])
            sims = sims - penalty * other
        if families is not None:  # a product is matched only by windows of its family
            other = np.array([[family(pairs.ref(j).category) != f for j in range(sims.shape[1])] for f in families])
            sims = sims - s.category_weight * other
        w, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if s.product_pooling == "mean":
            pooled = pool_product(sims, pairs.n_catalogue, "mean")
            w = int(np.argmax(pooled))
            j = int(np.argmax(sims[w]))
            best[pid] = (float(pooled[w]), pairs.ref(j), w)
        else:
            best[pid] = (float(sims[w, j]), pairs.ref(int(j)), int(w))
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
    top_window = ranked[0][1][2] if ranked else 0
    neighbours = tuple(Neighbour(ref, sim) for _, (sim, ref, _) in ranked[: s.region_candidates])
    category = knn_category(hits_per_window[top_window], index.items) if hits_per_window else ""
    if fused:
        category = fused[top_window]
    region = RegionMatch(plan.box, plan.score, plan.label, category, neighbours,
                         match_box=plan.windows[top_window] if plan.windows else None)
    return region, {pid: sim for pid, (sim, _, _) in best.items()}


@dataclass(frozen=True)
class _Pairs:
    """A product's cosine matrix (windows x regions): its catalogue regions (item ids), then its livestream
    examples (cosines less the offset). Regions are looked up only for the columns asked for (the best one,
    or every one when categories weigh in), not built for every candidate."""

    sims: np.ndarray
    index: ProductIndex
    ids: np.ndarray
    examples: list[RegionRef]

    @classmethod
    def of(cls, index: ProductIndex, catalogue: tuple[np.ndarray, np.ndarray] | None,
           examples: tuple[np.ndarray, list[RegionRef]] | None, offset: float) -> _Pairs | None:
        mats = ([catalogue[0]] if catalogue is not None else []) + ([examples[0] - offset] if examples else [])
        if not mats or sum(m.shape[1] for m in mats) == 0:
            return None
        ids = catalogue[1] if catalogue is not None else np.zeros(0, int)
        return cls(np.concatenate(mats, axis=1), index, ids, examples[1] if examples else [])

    def ref(self, j: int) -> RegionRef:
        return self.index.items[int(self.ids[j])] if j < len(self.ids) else self.examples[j - len(self.ids)]

    @property
    def n_catalogue(self) -> int:
        return len(self.ids)


def member_similarities(index: ProductIndex, vectors: np.ndarray, product_ids: list[str] | set[str],
                        members: tuple[tuple[slice, float], ...], s: SearchSettings,
                        examples: ExampleSet = NO_EXAMPLES) -> tuple[dict[str, float], ...]:
    """Each ensemble member's similarity of a region (its windows, ``vectors``) to each product, by that member's
    cosine alone: the dot product of the member's slice of the (weighted, concatenated) vectors divided by its
    weight, pooled over the product's catalogue regions and livestream examples (their cosines less
    ``s.example_offset``) as ``s.product_pooling`` says (see pool_product), the best window. ``members``: (slice,
    weight) of each member (engine.models.ensemble.member_slices). The ranking does not use it; the verdict counts
    how many members agree on the top product from it."""
    if not members:
        return ()
    pooling, offset = s.product_pooling, s.example_offset
    prepared = np.asarray(index.prepare(vectors), np.float32)
    out: list[dict[str, float]] = [{} for _ in members]
    for pid in product_ids:
        regions = np.asarray(index.vectors[index.product_items(pid)], np.float32)
        ex = examples.by_product.get(pid) if len(examples) else None
        extra = examples.vectors[ex] if ex is not None else np.zeros((0, prepared.shape[1]), np.float32)
        if len(regions) + len(extra) == 0:
            continue
        for m, (part, weight) in enumerate(members):
            sims = np.concatenate([prepared[:, part] @ regions[:, part].T / weight,
                                   prepared[:, part] @ extra[:, part].T / weight - offset], axis=1)
            out[m][pid] = round(float(pool_product(sims, len(regions), pooling).max()), 4)
    return tuple(out)


POOLINGS = ("max", "mean")


def pool_product(sims: np.ndarray, n_catalogue: int, pooling: str) -> np.ndarray:
    """A product's similarity to each query row from its (rows x regions) cosines, the first ``n_catalogue`` columns
    its catalogue regions and the rest its livestream examples: "max" the best region; "mean" the mean over its
    catalogue regions (a livestream example still counts on its own: the best of that mean and the examples)."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown product pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    if pooling == "max" or n_catalogue == 0:
        return sims.max(axis=1)
    pooled = sims[:, :n_catalogue].mean(axis=1)
    return np.maximum(pooled, sims[:, n_catalogue:].max(axis=1)) if sims.shape[1] > n_catalogue else pooled


def product_scores(index: ProductIndex, vector: np.ndarray, examples: ExampleSet = NO_EXAMPLES,
                   offset: float = 0.0, pooling: str = "max", bound: float = -1.0) -> dict[str, float]:
    """One query vector compared exactly with every product's regions and livestream examples (their cosines less
    ``offset``, those under ``bound`` left out): each product's similarity, pooled over its catalogue regions as
    ``pooling`` says."""
    sims = {pid: float(pool_product(m, m.shape[1], pooling)[0])
            for pid, (m, _) in index.product_similarities(vector[None], list(index.products)).items()}
    for pid, (m, _) in (examples.similarities(index.prepare(vector[None]), bound) if len(examples) else {}).items():
        sims[pid] = max(sims.get(pid, -1.0), float(m.max()) - offset)
    return sims
