"""Leave-products-out comparison of the learned parts (``python -m engine evaluate --compare --learned``).

The products that have clips are dealt into folds. For each fold, every learned part is trained
on the OTHER products only (their shop images and their clips' annotated frames), and the fold's
clips are matched against the whole catalogue with each set-up. Clip outcomes are pooled over
folds, so each clip is scored by models that never saw its product. Reported with each set-up:
clip top-1 / top-5 / MRR and region top-1; and for the parts themselves, garment detection AP@0.5
and category accuracy on the held-out annotated frames.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from engine.io.catalogue import Catalogue, load_catalogue
from engine.categories import merged
from engine.config import Settings
from engine.errors import EngineError
from engine.eval import setups
from engine.eval.evaluate import evaluate, metrics
from engine.io.files import atomic_write
from engine.eval.detection import GarmentDetections, garment_detections
from engine.training.garments import GarmentConfig, box_category, train_garment_head
from engine.io.images import crop
from engine.pipeline.engine import Engine
from engine.pipeline.search import fuse_categories, knn_category_scores
from engine.types import ClipOutcome, Metrics, RegionOutcome
from engine.training.data import ImageReader, annotated_images, product_folds, product_regions
from engine.training.triplet import TripletConfig, train_projection
from engine.workspace import ready_engine

Progress = Callable[[str, float], None]

@dataclass(frozen=True)
class LearnedRow:
    """One set-up's outcome pooled over the folds."""

    setup: str
    metrics: Metrics
    seconds: float
    ranks: dict[str, int | None]  # clip -> rank of its true product


@dataclass
class LearnedComparison:
    """``evaluate --compare --learned``: each set-up over leave-products-out folds, and the learned parts'
    own quality (garment detection AP@0.5, category accuracy) on the held-out frames."""

    dataset: str
    folds: list[list[str]]
    rows: list[LearnedRow] = field(default_factory=list)
    detection: dict[str, float] = field(default_factory=dict)
    categories: dict[str, float] = field(default_factory=dict)
    training: list[dict[str, Any]] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        """Write the comparison as JSON, atomically."""
        with atomic_write(path) as f:
            json.dump(asdict(self), f, ensure_ascii=False, indent=1)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> LearnedComparison:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            rows = [LearnedRow(r["setup"], Metrics(**r["metrics"]), r["seconds"], r["ranks"]) for r in data.pop("rows")]
            return cls(rows=rows, **data)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise EngineError(f"{Path(path).name}: not a readable comparison ({type(e).__name__})") from e


def category_accuracy(engine: Engine, head, catalogue: Catalogue, products: set[str]) -> dict[str, int]:
    """Counts of held-out annotated product boxes (clip frames) whose merged category is right, by the
    k-NN over the index, by the garment head, and by both fused."""
    reader = ImageReader()
    counts = {"boxes": 0, "knn": 0, "head": 0, "fused": 0}
    for region in product_regions(catalogue, products):
        if region.domain != "clip":
            continue
        image = reader.get(region.source, region.frame_index)
        if image is None:
            continue
        vector = engine.embedder.embed([crop(image, region.box)])[0]
        knn = knn_category_scores(engine.index.search(vector, 50), engine.index.items, merge=True)  # type: ignore
        by_head = box_category(engine, head, image, region.box)
        truth = merged(region.category)
        counts["boxes"] += 1
        counts["knn"] += bool(knn) and max(knn, key=knn.get) == truth
        counts["head"] += max(by_head, key=by_head.get) == truth
        counts["fused"] += fuse_categories(by_head, knn) == truth
    return counts


def learned_compare(dataset: str | Path, settings: Settings, work_dir: str | Path, n_folds: int = 5,
                    named: dict[str, setups.Overrides] | None = None,
                    triplet: TripletConfig = TripletConfig(), garment: GarmentConfig = GarmentConfig(),
                    progress: Progress = lambda s, f: None) -> LearnedComparison:
    named = named or setups.LEARNED
    catalogue = load_catalogue(dataset)
    folds = product_folds(catalogue, n_folds)
    if not folds:
        raise ValueError("no clip with a video and a known product: nothing to evaluate")
    work_dir = Path(work_dir)
    out = LearnedComparison(str(dataset), [sorted(f) for f in folds])
    outcomes: dict[str, list[ClipOutcome]] = {name: [] for name in named}
    regions: dict[str, list[RegionOutcome]] = {name: [] for name in named}
    seconds: dict[str, float] = {name: 0.0 for name in named}
    detections = GarmentDetections()
    cat_counts = {"boxes": 0, "knn": 0, "head": 0, "fused": 0}
    for k, fold in enumerate(folds):
        train = set(catalogue.products) - fold
        clip_ids = {c.video_id for c in catalogue.clips.values() if c.truth in fold}
        base = Engine(settings)
        t0 = time.perf_counter()
        progress(f"fold {k + 1}: triplet head", 0.0)
        trip = train_projection(base.embedder, catalogue, work_dir / f"fold{k}-triplet.pt",
                                replace(triplet, mode="cross-domain"), products=train)
        selfsup = train_projection(base.embedder, catalogue, work_dir / f"fold{k}-selfsup.pt",
                                   replace(triplet, mode="self-supervised"), products=train)
        progress(f"fold {k + 1}: garment head", 0.0)
        head, ginfo = train_garment_head(base, catalogue, work_dir / f"fold{k}-garment.pt", garment, products=train)
        out.training.append({"fold": sorted(fold), "train_products": len(train), "seconds": round(time.perf_counter() - t0, 1),
                             "triplet": {"regions": trip.regions, "loss": [trip.loss_first, trip.loss_last]},
                             "selfsup": {"regions": selfsup.regions, "loss": [selfsup.loss_first, selfsup.loss_last]},
                             "garment": {"images": ginfo["images"], "anchors": ginfo["anchors"],
                                         "loss": [ginfo["loss_first"], ginfo["loss_last"]]}})
        held_out_frames = annotated_images(catalogue, fold, shop=False)
        detections.extend(garment_detections(base, head, held_out_frames, settings.search.garment_top))
        counts = category_accuracy(ready_engine(settings, catalogue), head, catalogue, fold)
        cat_counts = {c: cat_counts[c] + counts[c] for c in cat_counts}
        checkpoints = {"triplet": trip.checkpoint, "selfsup": selfsup.checkpoint, "garment": ginfo["checkpoint"]}
        for name, overrides in named.items():
            progress(f"fold {k + 1}: {name}", 0.0)
            t1 = time.perf_counter()
            s = setups.apply(settings, overrides, checkpoints)
            report = evaluate(dataset, s, engine=Engine(s), catalogue=catalogue, clip_ids=clip_ids)
            seconds[name] += time.perf_counter() - t1
            outcomes[name] += list(report.clips)
            regions[name] += list(report.regions)
    for name in named:
        out.rows.append(LearnedRow(name, metrics(outcomes[name], regions[name]), round(seconds[name], 1),
                                   {o.video_id: o.truth_rank for o in outcomes[name]}))
    out.detection = detections.ap()
    n = max(1, cat_counts["boxes"])
    out.categories = {"boxes": cat_counts["boxes"], **{f"{c}_accuracy": round(cat_counts[c] / n, 4)
                                                       for c in ("knn", "head", "fused")}}
    return out


def format_learned(c: LearnedComparison) -> str:
    w = max([len("set-up")] + [len(r.setup) for r in c.rows])
    lines = [f"leave-products-out: {len(c.folds)} folds, held-out products per fold: "
             + "; ".join(",".join(f) for f in c.folds),
             f"{'set-up':<{w}} {'top-1':>6} {'top-5':>6} {'MRR':>6} {'votes':>6} {'region':>7} {'time':>7}"]
    for r in c.rows:
        m = r.metrics
        lines.append(f"{r.setup:<{w}} {m.top1:>6.3f} {m.top5:>6.3f} {m.mrr:>6.3f} {m.vote_share:>6.2f} "
                     f"{m.region_top1:>7.3f} {r.seconds:>6.1f}s")
    d = c.detection
    lines.append("votes: the mean share of sampled frames that voted for the true product")
    lines.append(f"garment detection AP@0.5 on {d.get('images', 0)} held-out frames ({d.get('boxes', 0)} boxes): "
                 f"learned head {d.get('ap50_garment_head', 0):.3f}, person boxes {d.get('ap50_detector_regions', 0):.3f}, "
                 f"all windows {d.get('ap50_all_windows', 0):.3f}")
    k = c.categories
    lines.append(f"category accuracy on {k.get('boxes', 0)} held-out product boxes (merged classes): "
                 f"k-NN {k.get('knn_accuracy', 0):.3f}, head {k.get('head_accuracy', 0):.3f}, "
                 f"fused {k.get('fused_accuracy', 0):.3f}")
    return "\n".join(lines)
