"""Evaluation: build the catalogue's index, match every clip, score the rankings, write a JSON report.

Ground truth follows the Tianchi convention: a clip shows the product whose id equals its video id.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .atomic import atomic_write
from .catalog import Catalogue, ClipRef, load_catalogue
from .config import Settings, index_dir_for
from .errors import EngineError
from .images import crop
from .pipeline import Engine
from .types import MatchResult

REPORT_VERSION = 1


@dataclass(frozen=True)
class ClipOutcome:
    video_id: str
    truth: str | None
    truth_rank: int | None  # 1-based; None when the truth is not ranked at all
    top: str | None
    result: dict[str, Any]  # MatchResult.to_dict()

    @property
    def correct(self) -> bool:
        return self.truth_rank == 1


@dataclass(frozen=True)
class EvalReport:
    dataset: str
    settings: dict[str, Any]
    metrics: dict[str, float]
    clips: tuple[ClipOutcome, ...]
    skipped: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    index: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    version: int = REPORT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file, then rename)."""
        with atomic_write(path) as f:
            f.write(self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> EvalReport:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            clips = tuple(ClipOutcome(**c) for c in data.pop("clips"))
            data["skipped"] = tuple(data.get("skipped", ()))
            data["problems"] = tuple(data.get("problems", ()))
            return cls(clips=clips, **data)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise EngineError(f"{Path(path).name}: not a readable evaluation report ({type(e).__name__})") from e


def metrics(outcomes: list[ClipOutcome]) -> dict[str, float]:
    """Clip top-1, top-5 and mean reciprocal rank over clips whose truth is in the catalogue."""
    scored = [o for o in outcomes if o.truth is not None]
    n = len(scored)
    if n == 0:
        return {"clips": 0, "top1": 0.0, "top5": 0.0, "mrr": 0.0}
    top1 = sum(o.truth_rank == 1 for o in scored) / n
    top5 = sum(o.truth_rank is not None and o.truth_rank <= 5 for o in scored) / n
    mrr = sum(1.0 / o.truth_rank for o in scored if o.truth_rank) / n
    return {"clips": n, "top1": round(top1, 4), "top5": round(top5, 4), "mrr": round(mrr, 4)}


def region_retrieval(engine: Engine, clips: list[ClipRef]) -> dict[str, float]:
    """Region-level top-1: each annotated box of the sold product, in the clip frames that have one,
    searched on its own (no detector, no windows). It separates feature quality from region quality."""
    import cv2

    hits, total = 0, 0
    for clip in clips:
        boxes = {i: [r.box for r in regs if r.instance_id != 0] for i, regs in clip.frames}
        boxes = {i: b for i, b in boxes.items() if b}
        if not boxes or not clip.path:
            continue
        cap = cv2.VideoCapture(clip.path)
        try:
            for index, frame_boxes in sorted(boxes.items()):
                cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                ok, bgr = cap.read()
                if not ok:
                    continue
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                vectors = engine.embedder.embed([crop(rgb, b) for b in frame_boxes])
                for v in vectors:
                    sims = engine.index.product_similarities(v[None], list(engine.index.products))  # type: ignore
                    best = max(sims, key=lambda pid: float(sims[pid][0].max()))
                    hits += best == clip.truth
                    total += 1
        finally:
            cap.release()
    return {"region_boxes": total, "region_top1": round(hits / total, 4) if total else 0.0}


def evaluate(
    dataset: str | Path,
    settings: Settings | None = None,
    engine: Engine | None = None,
    progress: Callable[[str, float], None] | None = None,
    catalogue: Catalogue | None = None,
    clip_ids: set[str] | None = None,
) -> EvalReport:
    """Build (or reuse, through the embedding cache) the index of ``dataset`` and match its clips
    (only those in ``clip_ids`` when given)."""
    settings = settings or Settings()
    progress = progress or (lambda stage, f: None)
    catalogue = catalogue or load_catalogue(dataset)
    engine = engine or Engine(settings)
    index_dir = index_dir_for(catalogue.root, settings)
    engine.build_index(catalogue, index_dir, lambda stage, f: progress(f"index: {stage}", f))
    chosen = [c for c in catalogue.clips.values() if clip_ids is None or c.video_id in clip_ids]
    clips = [c for c in chosen if c.path]
    skipped = tuple(f"{c.video_id}: video missing" for c in chosen if not c.path)
    outcomes: list[ClipOutcome] = []
    for n, clip in enumerate(clips):
        progress(f"match {clip.video_id}", n / max(1, len(clips)))
        try:
            result: MatchResult = engine.match(clip.path)  # type: ignore[arg-type]
        except EngineError as e:
            skipped += (f"{clip.video_id}: {e}",)
            continue
        truth = clip.truth if clip.truth in engine.index.products else None  # type: ignore[union-attr]
        outcomes.append(
            ClipOutcome(clip.video_id, truth, result.rank_of(truth) if truth else None,
                        result.top.product_id if result.top else None, result.to_dict())
        )
    progress("regions", 0.0)
    scores = metrics(outcomes)
    scores.update(region_retrieval(engine, [c for c in clips if c.truth in engine.index.products]))  # type: ignore
    progress("done", 1.0)
    meta = engine.index.meta if engine.index else {}
    return EvalReport(
        dataset=str(dataset),
        settings=asdict(settings),
        metrics=scores,
        clips=tuple(outcomes),
        skipped=skipped,
        problems=tuple(meta.get("problems", ())),
        index={k: meta.get(k) for k in ("model_key", "dim", "n_items", "n_products", "n_trees", "built_at",
                                        "build_seconds", "cache", "embedder", "detector")},
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def format_table(report: EvalReport) -> str:
    """The per-clip table and the summary line, as printed by the CLI."""
    lines = [f"{'clip':<10} {'truth':<10} {'top-1':<10} {'rank':>5} {'votes':>6} {'margin':>7}"]
    for o in report.clips:
        ranking = o.result["ranking"]
        votes = ranking[0]["votes"] if ranking else 0
        margin = votes - (ranking[1]["votes"] if len(ranking) > 1 else 0)
        mark = "ok" if o.correct else "MISS"
        lines.append(f"{o.video_id:<10} {str(o.truth):<10} {str(o.top):<10} {str(o.truth_rank or '-'):>5} "
                     f"{votes:>6} {margin:>7}  {mark}")
    m = report.metrics
    lines.append(f"clips {m['clips']}  top-1 {m['top1']:.3f}  top-5 {m['top5']:.3f}  MRR {m['mrr']:.3f}")
    if m.get("region_boxes"):
        lines.append(f"annotated product boxes {m['region_boxes']}  region top-1 {m['region_top1']:.3f} "
                     "(each box searched alone: feature quality without the detector)")
    return "\n".join(lines)


# Set-ups compared by ``evaluate --compare``: name -> settings overrides.
COMPARE_SETUPS: dict[str, dict[str, Any]] = {
    "baseline: person regions, 1280-d head": {"embedder": "efficientnet-lite0", "garment_windows": False},
    "person regions, GeM last stage": {"garment_windows": False},
    "garment windows, 1280-d head": {"embedder": "efficientnet-lite0"},
    "garment windows, GeM (default)": {"refine_windows": -1},
    "garment windows, GeM, fast (3 refined)": {"refine_windows": 3},
}


def compare(
    dataset: str | Path, settings: Settings, progress: Callable[[str, float], None] | None = None
) -> list[tuple[str, EvalReport, float]]:
    """Evaluate every set-up of COMPARE_SETUPS on the same data; returns (name, report, seconds)."""
    from dataclasses import replace

    catalogue = load_catalogue(dataset)
    rows = []
    for name, overrides in COMPARE_SETUPS.items():
        t0 = time.perf_counter()
        report = evaluate(dataset, replace(settings, **overrides), progress=progress, catalogue=catalogue)
        rows.append((name, report, time.perf_counter() - t0))
    return rows


def format_comparison(rows: list[tuple[str, EvalReport, float]]) -> str:
    lines = [f"{'set-up':<42} {'top-1':>6} {'top-5':>6} {'MRR':>6} {'region':>7} {'time':>8}"]
    for name, r, seconds in rows:
        m = r.metrics
        lines.append(f"{name:<42} {m['top1']:>6.3f} {m['top5']:>6.3f} {m['mrr']:>6.3f} "
                     f"{m.get('region_top1', 0.0):>7.3f} {seconds:>7.1f}s")
    return "\n".join(lines)
