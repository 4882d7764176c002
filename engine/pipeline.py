"""The Engine: clip -> frames -> regions -> embeddings -> neighbours -> votes -> ranking.

The catalogue side is built the same way: product images -> regions -> embeddings -> index.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .catalog import Catalogue
from .config import Settings
from .embed_cache import EmbeddingCache, file_digest
from .errors import EngineError, ImageError, ModelError
from .regions import band_fractions, garment_windows
from .images import crop, read_rgb
from .index import IndexItem, ProductIndex, write_index
from .categories import merged
from .models import Detector, Embedder, get_detector, get_embedder, get_garment_head
from .models.detectors import detect_side_by_side
from .types import Detections, Frame, FrameVote, MatchResult, Neighbour, ProductScore, RegionMatch
from .video import sample_frames

Progress = Callable[[str, float], None]
STAGES = ("decode", "detect", "embed", "search", "vote")


def _no_progress(stage: str, fraction: float) -> None:
    pass


def knn_category_scores(hits: list[tuple[int, float]], items: list[IndexItem], k: int = 5,
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


def relative(box: tuple[float, ...], region: tuple[float, ...]) -> tuple[float, float, float, float]:
    """A box as fractions (x0, y0, x1, y1) of a region box."""
    w, h = max(1e-6, region[2] - region[0]), max(1e-6, region[3] - region[1])
    return ((box[0] - region[0]) / w, (box[1] - region[1]) / h, (box[2] - region[0]) / w, (box[3] - region[1]) / h)


@dataclass(frozen=True)
class RegionPlan:
    """What is searched for one detected region: its garment windows and, from the garment head,
    a merged category per window (empty without one)."""

    box: tuple[float, ...]
    windows: list[tuple[float, ...]]
    categories: list[dict[str, float]]  # per window: merged category -> probability


def fuse_categories(head: dict[str, float], knn: dict[str, float]) -> str:
    """The merged category with the highest mean of the head's and the k-NN's probabilities."""
    classes = set(head) | set(knn)
    return max(sorted(classes), key=lambda c: head.get(c, 0.0) + knn.get(c, 0.0)) if classes else ""


class Engine:
    """Matches clips against one product index. Thread-safe once constructed."""

    def __init__(
        self,
        settings: Settings | None = None,
        detector: Detector | None = None,
        embedder: Embedder | None = None,
        index: ProductIndex | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._detector = detector
        self._embedder = embedder
        self.index = index

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = get_detector(self.settings.detector)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.settings.embedder, self.settings.device, self.settings.head)
        return self._embedder

    # ----------------------------------------------------------------- catalogue side
    def catalogue_regions(
        self,
        catalogue: Catalogue,
        progress: Progress = _no_progress,
        cache: EmbeddingCache | None = None,
        chunk: int = 32,
    ) -> tuple[np.ndarray, list[IndexItem], list[str]]:
        """Embed every product region: annotated product boxes where present, else detected, else whole image.

        Images are processed in chunks: detection and embedding are batched across the images of a chunk,
        and both are cached by image content, so a rebuild only works on what changed.
        """
        cache = cache or EmbeddingCache(self.settings.home / "embeddings")
        vectors: list[np.ndarray] = []
        items: list[IndexItem] = []
        problems: list[str] = []
        jobs = [(p, img) for p in catalogue.products.values() for img in p.images]
        for start in range(0, len(jobs), chunk):
            progress("embed", start / max(1, len(jobs)))
            for product, img_path, boxes, cats, source, vecs in self._embed_chunk(jobs[start : start + chunk],
                                                                                  cache, problems):
                vectors.append(vecs)
                items.extend(IndexItem(product.product_id, img_path, tuple(b), c, source)
                             for b, c in zip(boxes, cats))
        progress("embed", 1.0)
        dim = self.embedder.dim
        return (np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)), items, problems

    def _embed_chunk(self, jobs: list, cache: EmbeddingCache, problems: list[str]) -> list[tuple]:
        emb, s = self.embedder, self.settings
        planned, images = [], {}
        to_detect = []
        for product, img_path in jobs:
            try:
                digest = file_digest(img_path)
            except OSError as e:
                problems.append(f"{Path(img_path).name} of {product.product_id}: {e}; skipped")
                continue
            annotated = [r for r in product.regions if r.image_path == img_path and r.instance_id != 0]
            if annotated:
                planned.append([product, img_path, digest, [r.box for r in annotated],
                                [r.category for r in annotated], "annotation"])
                continue
            cached = cache.get_json(["regions", digest, s.detector, s.det_threshold, s.max_regions])
            if cached is not None:
                boxes, source = [tuple(b) for b in cached["boxes"]], cached["source"]
                planned.append([product, img_path, digest, boxes, [product.category] * len(boxes), source])
            else:
                planned.append([product, img_path, digest, None, None, None])
                to_detect.append(len(planned) - 1)
        readable = self._read_images(planned, to_detect, images, problems)
        if readable:
            dets = self.detector.detect([images[planned[i][1]] for i in readable], s.det_threshold)
            for i, det in zip(readable, dets):
                product, img_path, digest = planned[i][:3]
                det = self._product_regions(det, images[img_path])
                boxes = [tuple(float(v) for v in b) for b in det.boxes]
                cache.put_json(["regions", digest, s.detector, s.det_threshold, s.max_regions],
                               {"boxes": boxes, "source": det.source})
                planned[i][3:] = [boxes, [product.category] * len(boxes), det.source]
        planned = [p for p in planned if p[3] is not None]
        found: list[np.ndarray | None] = [cache.get(p[2], p[3], emb.key, emb.dim) for p in planned]
        missing = [i for i, v in enumerate(found) if v is None]
        ok = self._read_images(planned, missing, images, problems)
        crops, owners = [], []
        for i in ok:
            for b in planned[i][3]:
                crops.append(crop(images[planned[i][1]], b))
                owners.append(i)
        if crops:
            vecs = emb.embed(crops, s.batch_size)
            for i in ok:
                found[i] = vecs[[k for k, o in enumerate(owners) if o == i]]
                cache.put(planned[i][2], planned[i][3], emb.key, found[i])
        return [(p[0], p[1], p[3], p[4], p[5], v) for p, v in zip(planned, found)
                if v is not None and p[3] is not None]

    @staticmethod
    def _read_images(planned: list, ids: list[int], images: dict[str, np.ndarray], problems: list[str]) -> list[int]:
        """Read the images of planned[i] for i in ids into ``images``; returns the ids that could be read."""
        ok = []
        for i in ids:
            product, img_path = planned[i][0], planned[i][1]
            if img_path not in images:
                try:
                    images[img_path] = read_rgb(img_path)
                except ImageError as e:
                    planned[i][3] = None
                    problems.append(f"{Path(img_path).name} of {product.product_id}: {e}; skipped")
                    continue
            ok.append(i)
        return ok

    def build_index(self, catalogue: Catalogue, index_dir: str | Path, progress: Progress = _no_progress) -> Path:
        """Embed the catalogue and publish a new index (atomically); load it into this engine."""
        t0 = time.perf_counter()
        cache = EmbeddingCache(self.settings.home / "embeddings")
        vectors, items, problems = self.catalogue_regions(catalogue, progress, cache)
        progress("index", 0.0)
        products = {
            pid: {"name": p.name, "category": p.category, "images": list(p.images)}
            for pid, p in catalogue.products.items()
            if any(it.product_id == pid for it in items)
        }
        build = write_index(
            index_dir, vectors, items, products, self.embedder.key, self.settings.n_trees, self.settings.seed,
            backend=self.settings.index_backend,
            extra={
                "catalogue": catalogue.root,
                "embedder": self.embedder.name,
                "detector": self.settings.detector,
                "build_seconds": round(time.perf_counter() - t0, 2),
                "cache": {"hits": cache.hits, "misses": cache.misses},
                "problems": list(catalogue.problems) + problems,
            },
        )
        progress("index", 1.0)
        self.index = ProductIndex.load(index_dir, self.embedder.key)
        return build

    def load_index(self, index_dir: str | Path) -> ProductIndex:
        self.index = ProductIndex.load(index_dir, self.embedder.key)
        return self.index

    # ----------------------------------------------------------------- query side
    def _product_regions(self, det: Detections, image: np.ndarray) -> Detections:
        """Keep the most confident boxes; fall back to the whole image when there are none."""
        h, w = image.shape[:2]
        det = det[det.areas >= self.settings.min_region_area * w * h]
        if len(det) == 0:
            return Detections.whole(w, h)
        order = np.argsort(-det.scores)[: self.settings.max_regions]
        return det[order]

    def match(self, clip: str | Path, progress: Progress = _no_progress) -> MatchResult:
        """Sample frames from a clip and match them."""
        return self.match_clip(clip, progress)[0]

    def match_clip(self, clip: str | Path, progress: Progress = _no_progress) -> tuple[MatchResult, list[Frame]]:
        """Like ``match``, also returning the decoded frames, so a caller that draws them decodes nothing again."""
        t0 = time.perf_counter()
        progress("decode", 0.0)
        frames = sample_frames(clip, self.settings.frames)
        decode_s = time.perf_counter() - t0
        return self._with_decode_time(self.match_frames(frames, progress, clip_name=Path(clip).name), decode_s), frames

    @staticmethod
    def _with_decode_time(result: MatchResult, decode_s: float) -> MatchResult:
        result.timings["decode"] = round(decode_s, 4)
        result.timings["total"] = round(sum(v for k, v in result.timings.items() if k != "total"), 4)
        return result

    def match_many(
        self, clips: list[str | Path], progress: Progress = _no_progress
    ) -> Iterator[tuple[str, MatchResult | EngineError]]:
        """Match many clips, decoding the next clip in a background thread while this one is matched.

        Yields (clip, result) in order; a clip that cannot be read yields its EngineError instead.
        """
        from concurrent.futures import ThreadPoolExecutor

        def decode(path: str | Path) -> tuple[list[Frame] | EngineError, float]:
            t0 = time.perf_counter()
            try:
                return sample_frames(path, self.settings.frames), time.perf_counter() - t0
            except EngineError as e:
                return e, time.perf_counter() - t0

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
            pending = pool.submit(decode, clips[0]) if clips else None
            for i, clip in enumerate(clips):
                progress("match", i / len(clips))
                frames, decode_s = pending.result()  # type: ignore[union-attr]
                pending = pool.submit(decode, clips[i + 1]) if i + 1 < len(clips) else None
                if isinstance(frames, EngineError):
                    yield str(clip), frames
                    continue
                yield str(clip), self._with_decode_time(self.match_frames(frames, clip_name=Path(clip).name), decode_s)
        progress("match", 1.0)

    def match_frames(self, frames: list[Frame], progress: Progress = _no_progress, clip_name: str = "") -> MatchResult:
        if self.index is None:
            raise RuntimeError("no index loaded: call build_index() or load_index() first")
        s = self.settings
        timings: dict[str, float] = {}

        t = time.perf_counter()
        progress("detect", 0.0)
        images = [f.image for f in frames]
        found = (detect_side_by_side(self.detector, images, s.det_threshold) if s.side_by_side
                 else self.detector.detect(images, s.det_threshold))
        dets = [self._product_regions(d, f.image) for d, f in zip(found, frames)]
        timings["detect"] = round(time.perf_counter() - t, 4)

        t = time.perf_counter()
        progress("embed", 0.0)
        plan, vectors = self._embed_windows(frames, dets)
        timings["embed"] = round(time.perf_counter() - t, 4)

        t = time.perf_counter()
        progress("search", 0.0)
        frame_votes: list[FrameVote] = []
        row = 0
        for f, d in zip(frames, dets):
            regions, per_product = [], {}
            for region_plan, score, label in zip(plan[len(frame_votes)], d.scores, d.labels):
                n = len(region_plan.windows)
                region, sims = self._search_region(region_plan, vectors[row : row + n], float(score), label)
                row += n
                regions.append(region)
                for pid, sim in sims.items():
                    per_product[pid] = max(per_product.get(pid, -1.0), sim)
            voted = max(per_product, key=per_product.get) if per_product else None
            frame_votes.append(FrameVote(f.index, round(f.time_s, 3), tuple(regions), voted,
                                         round(per_product.get(voted, 0.0), 4) if voted else 0.0, d.source,
                                         {k: round(v, 4) for k, v in per_product.items()}))
        timings["search"] = round(time.perf_counter() - t, 4)

        t = time.perf_counter()
        progress("vote", 0.0)
        ranking = self._rank(frame_votes)
        timings["vote"] = round(time.perf_counter() - t, 4)
        progress("vote", 1.0)
        return MatchResult(clip_name, tuple(frame_votes), tuple(ranking), timings, asdict(s))

    def _embed_windows(self, frames: list[Frame], dets: list[Detections]) -> tuple[list[list[RegionPlan]], np.ndarray]:
        """The windows searched for every region and their embeddings, rows in (frame, region, window) order.

        - ``garment_model`` set: the learned garment head picks ``garment_top`` refined garment boxes
          per region, each with a category, from one forward pass per region; the boxes are then
          embedded exactly (cropped), or with ``refine_windows`` == 0 pooled from that same pass.
        - ``refine_windows`` < 0: every garment window is cropped and embedded (exhaustive, slowest).
        - ``refine_windows`` >= 0: one forward pass per region gives every window's vector by regional
          pooling of the feature map (coarse); the region itself and its ``refine_windows`` best
          windows, ranked by their nearest catalogue similarity, are then embedded exactly.
        """
        s = self.settings
        emb = self.embedder
        regions = [(f, tuple(float(v) for v in b), d.source == "whole-frame")
                   for f, d in zip(frames, dets) for b in d.boxes]
        categories: list[list[dict[str, float]]] = [[] for _ in regions]
        if s.garment_model:
            windows, categories, vectors = self._garment_regions(regions)
        elif not s.garment_windows or s.refine_windows < 0 or not getattr(emb, "supports_bands", False):
            windows = [garment_windows(box) if s.garment_windows else [box] for _, box, _ in regions]
            crops = [crop(f.image, w) for (f, _, _), ws in zip(regions, windows) for w in ws]
            vectors = emb.embed(crops, s.batch_size)
        else:
            windows = [garment_windows(box) for _, box, _ in regions]
            bands = band_fractions()
            coarse = emb.embed_bands([crop(f.image, box) for f, box, _ in regions], bands)  # type: ignore[attr-defined]
            if s.refine_windows == 0:
                vectors = coarse.reshape(-1, emb.dim)
            else:
                chosen: list[list[tuple[float, ...]]] = []
                for ws, vecs in zip(windows, coarse):
                    nearest = [self.index.search(v, 1) for v in vecs[1:]]  # type: ignore[union-attr]
                    best = [hits[0][1] if hits else -1.0 for hits in nearest]
                    top = sorted(1 + int(i) for i in np.argsort(best)[::-1][: s.refine_windows])
                    chosen.append([ws[0]] + [ws[i] for i in top])
                windows = chosen
                crops = [crop(f.image, w) for (f, _, _), ws in zip(regions, windows) for w in ws]
                vectors = emb.embed(crops, s.batch_size)
        plans = [RegionPlan(box, ws, cats) for (_, box, _), ws, cats in zip(regions, windows, categories)]
        plan: list[list[RegionPlan]] = []
        k = 0
        for d in dets:
            plan.append(plans[k : k + len(d)])
            k += len(d)
        return plan, vectors

    def _garment_regions(self, regions: list[tuple[Frame, tuple[float, ...], bool]]) -> tuple[list, list, np.ndarray]:
        """The learned garment head's boxes for each (frame, region box, is whole frame), their category
        distributions, and their vectors: cropped and embedded, or pooled when ``refine_windows`` == 0."""
        from .garment_head import clipped, window_geometry

        s, emb = self.settings, self.embedder
        head = get_garment_head(s.garment_model)
        base = getattr(emb, "base", emb)
        if head.meta.get("base_key") != base.key or not getattr(base, "supports_bands", False):
            raise ModelError(f"the garment head was trained on {head.meta.get('base_key')}, not on {base.key}: "
                             "choose the embedder it was trained for, or train one for this embedder")
        boxes = [clipped(box, f.image.shape[:2]) for f, box, _ in regions]
        fmaps = base.feature_maps([crop(f.image, b) for (f, _, _), b in zip(regions, boxes)])
        bands = [(0.0, y0, 1.0, y1) for y0, y1 in band_fractions()]
        windows, categories, pooled = [], [], []
        for r, ((f, _, whole), box) in enumerate(zip(regions, boxes)):
            found = head.detect(garment_windows(box), base.pool_boxes(fmaps[r], bands),
                                window_geometry(box, f.image.shape[:2], whole), s.garment_top)
            windows.append([b for b, _, _ in found])
            categories.append([c for _, _, c in found])
            if s.refine_windows == 0:  # pooled from the region's feature map: no second pass
                pooled.append(emb.pool_boxes(fmaps[r], [relative(b, box) for b in windows[-1]]))
        if s.refine_windows == 0:
            return windows, categories, (np.concatenate(pooled) if pooled else np.zeros((0, emb.dim), np.float32))
        crops = [crop(f.image, w) for (f, _, _), ws in zip(regions, windows) for w in ws]
        return windows, categories, emb.embed(crops, s.batch_size)

    def _search_region(
        self, plan: RegionPlan, vectors: np.ndarray, score: float, label: str
    ) -> tuple[RegionMatch, dict[str, float]]:
        """Search a detected region through its garment windows.

        Each window fetches Annoy candidates; the union of candidate products is then re-ranked
        exactly: a product's similarity is its best cosine over (window, catalogue region) pairs.
        With window categories (from the garment head) and ``category_weight`` > 0, pairs whose
        catalogue region has another merged category lose ``category_weight`` of similarity.
        """
        idx = self.index
        assert idx is not None
        windows = plan.windows
        hits_per_window = [idx.search(v, self.settings.neighbours, self.settings.search_k) for v in vectors]
        candidates = list(dict.fromkeys(idx.items[i].product_id for hits in hits_per_window for i, _ in hits))
        penalty = self.settings.category_weight if plan.categories else 0.0
        source = self.settings.category_source
        fused = [fuse_categories(head if source != "knn" else {},
                                 knn_category_scores(hits, idx.items, merge=True) if source != "head" else {})
                 for head, hits in zip(plan.categories, hits_per_window)]
        best: dict[str, tuple[float, int, int]] = {}  # product -> (similarity, catalogue item, window)
        for pid, (sims, items) in idx.product_similarities(vectors, candidates).items():
            if penalty:
                other = np.array([[merged(idx.items[j].category) != c for j in items] for c in fused])
                sims = sims - penalty * other
            w, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
            best[pid] = (float(sims[w, j]), int(items[j]), int(w))
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
        top_window = ranked[0][1][2] if ranked else 0
        neighbours = tuple(idx.neighbour(item, sim) for _, (sim, item, _) in ranked[: self.settings.region_candidates])
        category = self._knn_category(hits_per_window[top_window]) if hits_per_window else ""
        if fused:
            category = fused[top_window]
        region = RegionMatch(
            plan.box, score, label, category, neighbours,
            match_box=windows[top_window] if windows else None,
        )
        return region, {pid: sim for pid, (sim, _, _) in best.items()}

    def _knn_category(self, hits: list[tuple[int, float]]) -> str:
        scores = knn_category_scores(hits, self.index.items if self.index else [])
        return max(scores, key=scores.get) if scores else ""

    def _rank(self, frames: list[FrameVote]) -> list[ProductScore]:
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
        products = self.index.products if self.index else {}
        scores = [
            ProductScore(
                pid,
                str(products.get(pid, {}).get("name", pid)),
                votes.get(pid, 0),
                round(votes.get(pid, 0) / n, 4),
                round(max(s), 4),
                round(float(np.sum(s)) / n, 4),
                tuple(support.get(pid, ())),
                (products.get(pid, {}).get("images") or [None])[0],
                best[pid].image_path if pid in best else None,
                best[pid].box if pid in best else None,
            )
            for pid, s in sims.items()
        ]
        scores.sort(key=lambda p: (-p.votes, -p.mean_similarity, p.product_id))
        return scores
