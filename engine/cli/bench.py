"""The benchmarks' commands: ``bench`` (every stage, or the timeline), ``bench-index`` (index engines at scale) and
``bench-ray`` (catalogue embedding on Ray)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from engine.cli.common import settings_from
from engine.eval import bench_index, bench_ray
from engine.eval.bench import run, run_timeline
from engine.eval.bench_machine import machine, save_last
from engine.eval.timeline_bench import timeline_bench


def cmd_bench(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.timeline:
        results = {"machine": machine()}
        work = Path(tempfile.mkdtemp(prefix="livematch-bench-timeline-"))
        try:
            results["timeline"] = timeline_bench(settings, work, parts=max(2, args.timeline_parts))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        return 0  # the app's speed hint keeps the last full bench's figures
    if args.only == "timeline":
        results = run_timeline(settings, args.timeline_hours or 2.0)
    else:
        results = run(settings, runs=args.runs, timeline_hours=args.timeline_hours, quick=args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"figures saved for the app's speed hint: {save_last(results, settings.home)}")
    return 0


def cmd_bench_index(args: argparse.Namespace) -> int:
    rows = bench_index.run([int(s) for s in args.sizes.split(",")], dim=args.dim, n_queries=args.queries,
               n_trees=args.n_trees, engines=tuple(args.engines.split(",")),
               print_row=lambda r: print(bench_index.format_row(r), flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(bench_index.as_dicts(rows), indent=1))
    return 0


def cmd_bench_ray(args: argparse.Namespace) -> int:
    rows = bench_ray.run(args.images, tuple(int(w) for w in args.workers.split(",")), plain=not args.no_plain,
               settings=settings_from(args), print_row=lambda r: print(bench_ray.format_row(r), flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(bench_ray.as_dicts(rows), indent=1))
    return 0
