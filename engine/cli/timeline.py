"""The timeline's commands: ``timeline`` (which product, when, over a whole video or a stream) and
``timeline-eval`` (joined clips whose products are known, scored)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.cli.common import progress_bar, progress_hidden, settings_from
from engine.errors import EngineError
from engine.eval.timeline import join_clips, run_timeline, score_timeline
from engine.io.catalogue import load_catalogue
from engine.io.video import is_url
from engine.pipeline.timeline import LIVE_COARSE_S, TimelineParams, TimelineRun, format_time
from engine.workspace import ready_engine


def _timeline_params(args: argparse.Namespace, settings):
    defaults = TimelineParams()
    return TimelineParams(every_s=settings.detection.stream_every,
                          switch_penalty=defaults.switch_penalty if args.switch_penalty is None else args.switch_penalty,
                          none_below=defaults.none_below if args.none_below is None else args.none_below,
                          decode=args.decode, coarse_s=max(0.0, float(getattr(args, "coarse_s", defaults.coarse_s))),
                          release_shapes=True)  # a process of its own: the shapes a run does not use can go


def format_segments(timeline) -> str:
    """The segments as a table, one line each."""
    lines = [f"{'#':>3}  {'start':>8}  {'end':>8}  {'product':<10} {'name':<28} {'evidence':>8} {'margin':>7} "
             f"{'runner-up':<10} {'votes':>5}  verdict"]
    for i, s in enumerate(timeline.segments, 1):
        lines.append(f"{i:>3}  {format_time(s.start_s):>8}  {format_time(s.end_s):>8}  {s.product_id or '-':<10} "
                     f"{s.name[:28]:<28} {s.mean_evidence:8.3f} {s.margin:7.3f} {s.runner_up or '-':<10} "
                     f"{f'{s.votes}/{s.frames}':>5}  {s.verdict}")
    return "\n".join(lines)


def cmd_timeline(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    source = args.video if is_url(args.video) else Path(args.video)
    if args.live and not is_url(args.video):
        print("note: --live on a file reads it as a stream (sequentially, as it would play)", file=sys.stderr)
    params = _timeline_params(args, settings)
    if args.live:  # one coarse window (or frame) per step, the coarse interval short enough to answer soon
        params = replace(params, decode="sequential" if params.decode == "auto" else params.decode, batch=1,
                         coarse_s=min(params.coarse_s, LIVE_COARSE_S))
    engine = ready_engine(settings, progress=progress_bar("index"))
    run = TimelineRun(engine, source, params)
    bar = None
    if not args.live:
        total = round(run.duration_s, 1) if run.duration_s > 0 else None
        bar = tqdm(total=total, desc=run.label[:24], unit="s", file=sys.stderr, disable=progress_hidden(),
                   bar_format="{desc:<24} {percentage:3.0f}%|{bar:30}| {n:.0f}/{total:.0f} video s "
                              "[{elapsed}<{remaining}]" if total else None)
    shown = 0
    try:
        while not run.ended:
            run.step()
            if bar is not None:
                bar.n = min(run.covered_s, bar.total or run.covered_s)
                bar.refresh()
            if args.live:
                closed = run.timeline().segments[:-1]
                for s in closed[shown:]:
                    print(f"{format_time(s.start_s)}-{format_time(s.end_s)}  {s.product_id or '-':<10} {s.name[:28]}"
                          f"  ({s.verdict}, evidence {s.mean_evidence:.3f}, margin {s.margin:.3f})", flush=True)
                shown = max(shown, len(closed))
    except KeyboardInterrupt:
        run.stop()
    finally:
        run.close()
        if bar is not None:
            if run.status == "complete" and bar.total:
                bar.n = bar.total
                bar.refresh()
            bar.close()
    timeline = run.timeline()
    print(format_segments(timeline))
    print(f"{timeline.source}: {timeline.message}; {timeline.seconds:.1f} s for {format_time(timeline.end_s)} of video")
    if timeline.status == "broken":
        print(f"warning: {timeline.note}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(timeline.to_dict(), ensure_ascii=False, indent=1))
    if args.csv:
        Path(args.csv).write_text(timeline.to_csv(), encoding="utf-8")
    return 0


def cmd_timeline_eval(args: argparse.Namespace) -> int:
    """Join clips of a dataset (their products known), build each joined video's timeline and score it."""
    settings = settings_from(args)
    dataset = load_catalogue(args.dataset)
    sequences = [[v.strip() for v in s.split(",") if v.strip()] for s in args.join]
    missing = sorted({v for s in sequences for v in s if v not in dataset.clips or not dataset.clips[v].path})
    if missing:
        raise EngineError(f"{args.dataset}: no readable clip for {', '.join(missing)}")
    out_dir = Path(args.out or (settings.home / "timeline-eval"))
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = ready_engine(settings.with_(catalogue=args.dataset), dataset, progress=progress_bar("index"))
    params = _timeline_params(args, settings)
    rows = []
    for seq in sequences:
        video = out_dir / f"joined-{'-'.join(seq)}.mp4"
        truth = join_clips([(dataset.clips[v].path, dataset.clips[v].truth or v) for v in seq], video,
                           size=(args.width, args.height))
        timeline = run_timeline(engine, video, params)
        score = score_timeline(timeline, truth)
        rows.append({"video": str(video), "clips": seq, "accuracy": score.accuracy,
                     "boundary_errors_s": list(score.boundary_errors), "in_order": score.in_order,
                     "found": list(score.order), "segments": len(timeline.segments),
                     "every_s": timeline.every_s, "seconds": timeline.seconds})
        print(f"{','.join(seq):<48} accuracy {score.accuracy:.3f}  boundary errors "
              f"{', '.join(f'{e:.1f}' for e in score.boundary_errors) or '-'} s  order "
              f"{'right' if score.in_order else 'WRONG: ' + ','.join(score.order)}  ({len(timeline.segments)} segments)",
              flush=True)
    if rows:
        errors = [e for r in rows for e in r["boundary_errors_s"]]
        print(f"mean accuracy {np.mean([r['accuracy'] for r in rows]):.3f} over {len(rows)} joined videos; "
              f"boundary error mean {np.mean(errors) if errors else 0:.2f} s, max {max(errors, default=0):.2f} s; "
              f"order right in {sum(r['in_order'] for r in rows)}/{len(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0
