"""Evaluation: build the catalogue's index, match every clip, score the rankings, write a JSON report.

Ground truth follows the Tianchi convention: a clip shows the product whose id equals its video id.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import Settings
from engine.errors import EngineError
from engine.eval import openset, setups
from engine.io.catalogue import Catalogue, ClipRef, load_catalogue
from engine.io.files import atomic_write
from engine.io.images import crop
from engine.io.video import read_frames
from engine.pipeline.engine import Engine
from engine.pipeline.search import product_scores
from engine.types import ClipOutcome, EvalReport, Metrics, RegionOutcome
from engine.verdict import DEFAULT_RULE
from engine.workspace import index_dir_for

Progress = Callable[[str, float], None]


def save_report(report: EvalReport, path: str | Path) -> Path:
    """Write atomically (temporary file, then rename)."""
    with atomic_write(path) as f:
        f.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    return Path(path)


def load_report(path: str | Path) -> EvalReport:
    try:
        return EvalReport.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise EngineError(f"{Path(path).name}: not a readable evaluation report ({type(e).__name__})") from e


def truth_share(outcome: ClipOutcome) -> float:
    """The true product's share of the sampled frames' votes."""
    return next((p.vote_share for p in outcome.result.ranking if p.product_id == outcome.truth), 0.0)


def metrics(outcomes: list[ClipOutcome], regions: list[RegionOutcome] = ()) -> Metrics:  # type: ignore[assignment]
    """Clip top-1, top-5, mean reciprocal rank and vote share over clips whose truth is in the catalogue, and
    region top-1 over annotated boxes."""
    scored = [o for o in outcomes if o.truth is not None]
    hits = sum(r.rank == 1 for r in regions)
    n = len(scored)
    if n == 0:
        return Metrics(region_boxes=len(regions), region_top1=round(hits / len(regions), 4) if regions else 0.0)
    return Metrics(
        clips=n,
        top1=round(sum(o.truth_rank == 1 for o in scored) / n, 4),
        top5=round(sum(o.truth_rank is not None and o.truth_rank <= 5 for o in scored) / n, 4),
        mrr=round(sum(1.0 / o.truth_rank for o in scored if o.truth_rank) / n, 4),
        region_boxes=len(regions),
        region_top1=round(hits / len(regions), 4) if regions else 0.0,
        vote_share=round(float(np.mean([truth_share(o) for o in scored])), 4),
    )


def region_retrieval(engine: Engine, clips: list[ClipRef]) -> list[RegionOutcome]:
    """Each annotated box of the sold product, in the clip frames that have one, searched on its own (no
    detector, no windows; products pooled over their regions as the settings say): the rank of its true product. It separates feature quality from region quality."""
    index = engine.index
    assert index is not None
    out: list[RegionOutcome] = []
    for clip in clips:
        boxes = {i: [r.box for r in regs if r.instance_id != 0] for i, regs in clip.frames}
        boxes = {i: b for i, b in boxes.items() if b}
        if not boxes or not clip.path:
            continue
        for frame in read_frames(clip.path, sorted(boxes), downscale=False):
            vectors = engine.embedder.embed([crop(frame.image, b) for b in boxes[frame.index]])
            for box, v in zip(boxes[frame.index], vectors):
                sims = product_scores(index, v, pooling=engine.settings.search.product_pooling)
                order = sorted(sims, key=lambda pid: -sims[pid])
                rank = order.index(clip.truth) + 1 if clip.truth in order else None
                out.append(RegionOutcome(clip.video_id, frame.index, tuple(float(x) for x in box),  # type: ignore[arg-type]
                                         str(clip.truth), rank, order[0] if order else None))
    return out


def evaluate(dataset: str | Path, settings: Settings | None = None, engine: Engine | None = None,
             progress: Progress | None = None, catalogue: Catalogue | None = None,
             clip_ids: set[str] | None = None, open_set: bool = False) -> EvalReport:
    """Build (or reuse, through the embedding cache) the index of ``dataset`` and match its clips
    (only those in ``clip_ids`` when given). Livestream examples (corrections) are not searched: they may come from
    these very clips (the Inspect page corrects them); ``eval-corrections`` measures them without leakage.
    With ``open_set``, each clip is also matched with its product removed from the catalogue (engine.eval.openset)."""
    catalogue = catalogue or load_catalogue(dataset)
    settings = settings or Settings()  # int8 is calibrated on the catalogue served, as the app's is
    settings = settings.with_(use_examples=False, calibration=settings.models.calibration or str(catalogue.root))
    progress = progress or (lambda stage, f: None)
    engine = engine or Engine(settings)
    engine.settings = engine.settings.with_(use_examples=False)
    engine.build_index(catalogue, index_dir_for(catalogue.root, settings), lambda stage, f: progress(f"index: {stage}", f))
    chosen = [c for c in catalogue.clips.values() if clip_ids is None or c.video_id in clip_ids]
    clips = [c for c in chosen if c.path]
    skipped = [f"{c.video_id}: video missing" for c in chosen if not c.path]
    outcomes: list[ClipOutcome] = []
    for n, clip in enumerate(clips):
        progress(f"match {clip.video_id}", n / max(1, len(clips)))
        outcome = match_outcome(engine, clip)
        outcomes.append(outcome) if isinstance(outcome, ClipOutcome) else skipped.append(outcome)
    progress("regions", 0.0)
    regions = region_retrieval(engine, [c for c in clips if c.truth in engine.index.products])  # type: ignore[union-attr]
    unknown = ()
    if open_set:
        kept = {o.video_id for o in outcomes}
        unknown = openset.open_set(engine, replace(catalogue, clips={k: c for k, c in catalogue.clips.items()
                                                                     if k in kept}), progress)
    progress("done", 1.0)
    return replace(make_report(dataset, settings, engine, outcomes, regions, skipped), open_set=unknown)


def match_outcome(engine: Engine, clip: ClipRef) -> ClipOutcome | str:
    """One clip matched and scored against its truth, or why it was skipped."""
    try:
        result = engine.match(clip.path)  # type: ignore[arg-type]
    except EngineError as e:
        return f"{clip.video_id}: {e}"
    truth = clip.truth if clip.truth in engine.index.products else None  # type: ignore[union-attr]
    return ClipOutcome(clip.video_id, truth, result.rank_of(truth) if truth else None,
                       result.top.product_id if result.top else None, result)


def make_report(dataset: str | Path, settings: Settings, engine: Engine, outcomes: list[ClipOutcome],
                regions: list[RegionOutcome], skipped: list[str]) -> EvalReport:
    summary = engine.index.summary  # type: ignore[union-attr]
    return EvalReport(
        dataset=str(dataset), settings=settings.flat(), metrics=metrics(outcomes, regions), clips=tuple(outcomes),
        regions=tuple(regions), skipped=tuple(skipped), problems=summary.problems,
        index={k: v for k, v in vars(summary).items() if k != "problems"},
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def absent_clips(report: EvalReport) -> list[str]:
    """Clips whose product is not in the catalogue (open set: a truth id absent from its images), by video id."""
    return [o.video_id for o in report.clips if o.truth is None]


def clip_mark(o: ClipOutcome) -> str:
    """The table's last column: ok, MISS, or absent (a clip of a product the catalogue does not have)."""
    return "absent" if o.truth is None else ("ok" if o.correct else "MISS")


def format_table(report: EvalReport) -> str:
    """The per-clip table and the summary line, as printed by the CLI (with the open-set table when it was run)."""
    lines = [f"{'clip':<10} {'truth':<10} {'top-1':<10} {'rank':>5} {'votes':>6} {'evidence':>9} {'margin':>7} "
             f"{'rel':>5} {'frames':>6} {'members':>7}  {'verdict':<16}"]
    for o in report.clips:
        ranking = o.result.ranking
        top = ranking[0] if ranking else None
        v = o.result.verdict
        lines.append(f"{o.video_id:<10} {str(o.truth):<10} {str(o.top):<10} {str(o.truth_rank or '-'):>5} "
                     f"{top.votes if top else 0:>6} {top.mean_similarity if top else 0.0:>9.3f} "
                     f"{v.evidence_margin:>7.3f} {v.relative_margin:>5.2f} {v.signals.frames_agree:>6.2f} "
                     f"{f'{v.signals.members_agree}/{v.signals.members}':>7}  {v.level:<16} "
                     f"{clip_mark(o)}")
    rule = DEFAULT_RULE
    lines.append("evidence: the top product's best similarity per frame, averaged over the sampled frames; margin: "
                 "over the runner-up; rel: that margin as a share of the top's lead over the median product below the "
                 "runner-up; members: ensemble members ranking it "
                 f"first; frames: the share of frames in which every member's best is it. Confident: every member "
                 f"ranks it first, frames >= {rule.frames_agree}, rel >= {rule.relative_margin}; not in catalogue: "
                 "fewer than half the members rank it first, or no frame in which all do and rel < " f"{rule.relative_margin}")
    m = report.metrics
    lines.append(f"clips {m.clips}  top-1 {m.top1:.3f}  top-5 {m.top5:.3f}  MRR {m.mrr:.3f}  "
                 f"truth's vote share {m.vote_share:.2f}")
    absent = absent_clips(report)
    if absent:
        lines.append(f"absent-product clips {len(absent)} ({', '.join(absent)}): their product is not in the catalogue, "
                     "so they are left out of top-1, top-5 and MRR; the right answer for them is not a product")
    if m.region_boxes:
        lines.append(f"annotated product boxes {m.region_boxes}  region top-1 {m.region_top1:.3f} "
                     "(each box searched alone: feature quality without the detector)")
    scored = [o for o in report.clips if o.truth is not None]
    if scored:
        c = openset.outcome_counts(scored)
        right = sum(o.correct for o in scored if o.result.verdict.confident)
        lines.append(f"verdicts: {c['confident']} of {m.clips} clips confident ({right} right), "
                     f"{c['uncertain']} uncertain, {c['not in catalogue']} not in catalogue")
    if report.open_set:
        lines.append(openset.format_open_set(report.open_set))
    if m.clips > 1:
        from engine.eval.nested import calibrate_rule, calibrate_verdict, format_calibration, format_rule_calibration

        lines.append(format_calibration(calibrate_verdict(report.clips)))
        if report.open_set:
            lines.append(format_rule_calibration(calibrate_rule(report.clips, report.open_set)))
    return "\n".join(lines)


def compare(dataset: str | Path, settings: Settings, progress: Progress | None = None,
            named: dict[str, setups.Overrides] | None = None) -> list[tuple[str, EvalReport, float]]:
    """Evaluate every named set-up (default: the candidates setups.COMPARE, then setups.REFERENCE) on the same data;
    returns (name, report, seconds)."""
    catalogue = load_catalogue(dataset)
    rows = []
    for name, overrides in (named or {**setups.COMPARE, **setups.REFERENCE}).items():
        t0 = time.perf_counter()
        report = evaluate(dataset, setups.apply(settings, overrides), progress=progress, catalogue=catalogue)
        rows.append((name, report, time.perf_counter() - t0))
    return rows


def save_comparison(rows: list[tuple[str, EvalReport, float]], path: str | Path) -> Path:
    """Every set-up's report, the nested leave-one-clip-out figure and the verdict calibration of each, as JSON."""
    from engine.eval.nested import calibrate_verdict, nested_loco

    candidates = [(name, r) for name, r, _ in rows if name not in setups.REFERENCE]
    data = {"rows": [{"setup": name, "seconds": round(sec, 1), "candidate": name not in setups.REFERENCE,
                      "verdict": calibrate_verdict(r.clips).to_dict(), "report": r.to_dict()} for name, r, sec in rows],
            "nested": nested_loco(candidates).to_dict() if candidates else None}
    with atomic_write(path) as f:
        f.write(json.dumps(data, ensure_ascii=False, indent=1))
    return Path(path)


def format_comparison(rows: list[tuple[str, EvalReport, float]]) -> str:
    """The plain table (every set-up on every clip), then the nested leave-one-clip-out figure beside it."""
    from engine.eval.nested import format_nested, nested_loco

    w = max([len("set-up")] + [len(name) for name, _, _ in rows])
    lines = [f"{'set-up':<{w}} {'top-1':>6} {'top-5':>6} {'MRR':>6} {'votes':>6} {'region':>7} {'time':>8}"]
    for name, r, seconds in rows:
        m = r.metrics
        lines.append(f"{name:<{w}} {m.top1:>6.3f} {m.top5:>6.3f} {m.mrr:>6.3f} {m.vote_share:>6.2f} "
                     f"{m.region_top1:>7.3f} {seconds:>7.1f}s")
    lines.append("votes: the true product's mean share of the sampled frames' votes; region: each annotated box "
                 "searched alone")
    lines.append("the plain table picks the best of many set-ups on the same clips it scores them on: optimistic.")
    candidates = [(name, r) for name, r, _ in rows if name not in setups.REFERENCE]
    if candidates:
        lines.append(format_nested(nested_loco(candidates)))
        if any(name in setups.REFERENCE for name, _, _ in rows):
            lines.append("reference and over-budget rows are shown, never chosen: they take a statistic from the clips "
                         "they are scored on, or cost more than 1.5x the previous default's CPU time per clip")
    return "\n".join(lines)
