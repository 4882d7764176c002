"""``evaluate``: match every clip of a dataset and score it; with --compare every set-up, with --learned the
learned parts per leave-products-out fold, with --leave-clip-out-mean a mean computed without the clip."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.common import progress_bar, settings_from
from engine.eval.crossval import format_learned, learned_compare
from engine.eval.domain_loco import evaluate_leave_clip_out
from engine.eval.evaluate import compare, evaluate, format_comparison, format_table, save_comparison, save_report
from engine.workspace import learned_report_path, report_path


def cmd_evaluate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.leave_clip_out_mean:
        report = evaluate_leave_clip_out(args.dataset, settings, progress_bar("evaluate"))
        print(format_table(report))
        print(f"report: {save_report(report, args.report or report_path(settings, args.dataset))}")
        return 0
    if args.compare and args.learned:
        work = Path(args.work_dir or (settings.home / "crossval"))
        result = learned_compare(args.dataset, settings, work, n_folds=args.folds,
                                 progress=lambda stage, f: print(stage, file=sys.stderr, flush=True))
        print(format_learned(result))
        print(f"report: {result.save(args.report or learned_report_path(settings, args.dataset))}")
        return 0
    if args.compare:
        rows = compare(args.dataset, settings, progress=progress_bar("compare"))
        print(format_comparison(rows))
        if args.report:
            print(f"report: {save_comparison(rows, args.report)}")
        return 0
    report = evaluate(args.dataset, settings, progress=progress_bar("evaluate"), open_set=args.open_set)
    for s in report.skipped:
        print(f"skipped: {s}", file=sys.stderr)
    out = save_report(report, args.report or report_path(settings, args.dataset))
    print(format_table(report))
    print(f"report: {out}")
    if args.fail_under is not None and report.metrics.top1 < args.fail_under:
        print(f"error: top-1 {report.metrics.top1:.3f} is below {args.fail_under}", file=sys.stderr)
        return 1
    return 0
