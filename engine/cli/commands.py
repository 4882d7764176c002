"""The commands: each reads its arguments, calls the library and prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from engine.cli.common import progress_bar, settings_from
from engine.errors import EngineError
from engine.io.catalogue import ALL_PROBLEMS


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.io.demo import default_demo_dir, generate_demo

    out = generate_demo(args.out or default_demo_dir(), n_products=args.products, n_clips=args.clips, seed=args.seed,
                        n_absent=args.absent)
    print(out)
    return 0


def cmd_build_index(args: argparse.Namespace) -> int:
    from engine.io.catalogue import load_catalogue
    from engine.workspace import build_index, catalogue_root

    settings = settings_from(args)
    catalogue = load_catalogue(catalogue_root(settings))
    m = build_index(settings, catalogue, progress_bar("index"), ray_address=args.ray,  # type: ignore[union-attr]
                    ray_workers=args.ray_workers).index.summary
    print(f"index {m.build}: {m.n_products} products, {m.n_items} regions, {m.dim}-d {m.model_key}, "
          f"{m.build_seconds} s (cache hits {m.cache_hits}, misses {m.cache_misses})")
    for line in problem_report(m.problems, len(m.problems) if args.all_problems else SHOWN_PROBLEMS):
        print(line, file=sys.stderr)
    return 0


SHOWN_PROBLEMS = 10


def problem_report(problems: tuple[str, ...] | list[str], shown: int = SHOWN_PROBLEMS) -> list[str]:
    """Lines saying how many files were skipped or partly read (each problem is "path: why"), and the first few."""
    if not problems:
        return []
    files = {p.split(": ", 1)[0] for p in problems}
    lines = [f"warning: {len(files)} file(s) skipped or partly read ({len(problems)} problem(s)); the first "
             f"{min(shown, len(problems))}:"]
    lines += [f"  {p}" for p in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"  ... and {len(problems) - shown} more: {ALL_PROBLEMS} prints them all (they are in the "
                     "index's meta.json too)")
    return lines


NAME_COLUMNS = 34  # terminal columns of the name column (wide characters count two)


def format_result(result, top_k: int) -> str:
    """A clip's answer: its verdict in a sentence, then the ranking as a table ordered by its key, the evidence
    (each product's best similarity per sampled frame, averaged over the frames), with votes and best similarity."""
    from engine.categories import fit

    n = len(result.frames)
    lines = [f"{result.clip}  ({result.timings.get('total', sum(result.timings.values())):.2f} s)",
             f"  {verdict_sentence(result)}"]
    if not result.ranking:
        return "\n".join(lines)
    key = "votes" if result.settings.get("rank_by") == "votes" else "evidence"
    lines.append(f"  {'#':>2}  {'product':<10} {fit('name', NAME_COLUMNS)} {'evidence':>8} {'votes':>7} "
                 f"{'best sim':>8}   (ranked by {key})")
    for i, p in enumerate(result.ranking[:top_k], 1):
        lines.append(f"  {i:>2}. {p.product_id:<10} {fit(p.name, NAME_COLUMNS)} {p.mean_similarity:>8.3f} "
                     f"{f'{p.votes}/{n}':>7} {p.best_similarity:>8.3f}")
    return "\n".join(lines)


def verdict_sentence(result) -> str:
    """"confident: 900001 (Cream checked trousers): 10 of 10 sampled frames voted for it, ...", the uncertain case
    with its runner-up, or "not in the catalogue: closest ..., not a match"; the votes are always said to be whose."""
    v, top = result.verdict, result.top
    n = len(result.frames)
    if top is None:
        return "no verdict: no catalogue product matched any sampled frame"
    said = f"{top.product_id} ({top.name})" if top.name and top.name != top.product_id else top.product_id
    own = f"{top.votes} of {n} sampled frames voted for {top.product_id}, evidence {top.mean_similarity:.3f}"
    if v.runner_up is None:
        return f"confident: {said} is shown; {own}"
    second = next(p for p in result.ranking if p.product_id == v.runner_up)
    rival = f"runner-up {second.product_id}: {second.votes} votes, evidence {second.mean_similarity:.3f}"
    if v.confident:
        return f"confident: {said} is shown; {own} ({rival})"
    if v.absent:
        return (f"not in the catalogue: closest {', '.join(v.closest)}, not a match; {own}; "
                f"{v.signals.members - v.signals.members_agree} of {v.signals.members} models rank another first")
    return (f"uncertain: most likely {said}, but {second.product_id} is close; {own}; {rival} "
            f"(evidence margin {v.evidence_margin:+.3f})")


def _print_result(result, top_k: int) -> None:
    print(format_result(result, top_k))


def cmd_match(args: argparse.Namespace) -> int:
    from engine.io.video import VIDEO_SUFFIXES, is_url
    from engine.pipeline.sources import ClipPaths
    from engine.workspace import ready_engine

    settings = settings_from(args)
    target = args.clip if is_url(args.clip) else Path(args.clip)  # a URL stays text: Path folds its '//'
    batch = args.batch or (isinstance(target, Path) and target.is_dir())
    if batch and not (isinstance(target, Path) and target.is_dir()):
        raise EngineError(f"{target}: not a folder of clips")
    clips = sorted(p for p in target.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if batch else [target]
    if batch and not clips:
        raise EngineError(f"{target}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    engine = ready_engine(settings, progress=progress_bar("index"))
    examples = engine.examples()
    if len(examples):
        print(f"note: {len(examples)} livestream example region(s) (corrections) are searched with the catalogue",
              file=sys.stderr)
    if examples.note:
        print(f"warning: {examples.note}", file=sys.stderr)
    if args.live:
        return _match_live(engine, str(target), args)
    results, failed = [], 0
    if batch:
        bar = progress_bar("match")
        for clip, result in engine.match(ClipPaths(tuple(clips)), bar):
            if isinstance(result, EngineError):
                failed += 1
                print(f"error: {result}", file=sys.stderr)
                continue
            results.append(result.to_dict())
            _print_result(result, settings.search.top_k)
        bar("done", 1.0)
    else:
        result = engine.match(target, progress_bar(Path(str(target)).name))
        results.append(result.to_dict())
        _print_result(result, settings.search.top_k)
    if args.json:
        Path(args.json).write_text(json.dumps(results if batch else results[0], ensure_ascii=False, indent=1))
    return 0 if results and not failed else (2 if not results else 1)


def _match_live(engine, url: str, args: argparse.Namespace) -> int:
    """``match URL --live``: one line per sampled frame, the ranking over the recent frames when it changes."""
    from engine.pipeline.live import LiveMatch

    live = LiveMatch(engine, url)  # a frame every stream_every seconds (--every)
    shown: list[str] = []
    try:
        while not live.ended and (args.max_frames <= 0 or live.frames_seen < args.max_frames):
            update = live.step()
            for f in update.added:
                print(f"frame {f.frame_index:>6} at {f.time_s:7.1f} s: votes {f.voted_product or '-'}", flush=True)
            top = [p.product_id for p in update.result.ranking[:3]]
            if update.added and top != shown:
                shown = top
                v = update.result.verdict
                print(f"  ranking over the last {len(update.result.frames)} frames: {', '.join(top)} ({v.level})",
                      flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        live.close()
    if live.last is None:
        raise EngineError(f"{url}: the stream ended before a frame could be matched")
    _print_result(live.last, engine.settings.search.top_k)
    if args.json:
        Path(args.json).write_text(json.dumps(live.last.to_dict(), ensure_ascii=False, indent=1))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.eval.evaluate import evaluate, format_table, save_report
    from engine.workspace import report_path

    settings = settings_from(args)
    if args.leave_clip_out_mean:
        from engine.eval.domain_loco import evaluate_leave_clip_out

        report = evaluate_leave_clip_out(args.dataset, settings, progress_bar("evaluate"))
        print(format_table(report))
        print(f"report: {save_report(report, args.report or report_path(settings, args.dataset))}")
        return 0
    if args.compare and args.learned:
        from engine.eval.crossval import format_learned, learned_compare
        from engine.workspace import learned_report_path

        work = Path(args.work_dir or (settings.home / "crossval"))
        result = learned_compare(args.dataset, settings, work, n_folds=args.folds,
                                 progress=lambda stage, f: print(stage, file=sys.stderr, flush=True))
        print(format_learned(result))
        print(f"report: {result.save(args.report or learned_report_path(settings, args.dataset))}")
        return 0
    if args.compare:
        from engine.eval.evaluate import compare, format_comparison, save_comparison

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


def _products(value: str | None) -> set[str] | None:
    return {p.strip() for p in value.split(",") if p.strip()} if value else None


def _training_catalogue(args: argparse.Namespace):
    from engine.io.catalogue import load_catalogue
    from engine.workspace import catalogue_root

    settings = settings_from(args)
    catalogue = load_catalogue(args.dataset or catalogue_root(settings))
    exclude = _products(args.exclude_products) or set()
    unknown = exclude - set(catalogue.products)
    if unknown:
        raise EngineError(f"--exclude-products: not in the catalogue: {', '.join(sorted(unknown))}")
    return settings, catalogue, set(catalogue.products) - exclude


def cmd_train_embedding(args: argparse.Namespace) -> int:
    from engine.models import get_embedder
    from engine.training.triplet import TripletConfig, train_projection

    settings, catalogue, products = _training_catalogue(args)
    config = TripletConfig(mode=args.mode, views=args.views, out_dim=args.dim, steps=args.steps, seed=args.seed)
    embedder = get_embedder(settings.models.embedder, settings.models.device)
    report = train_projection(embedder, catalogue, args.out, config,
                              products, progress_bar("train-embedding"), home=settings.home)
    print(f"checkpoint {report.checkpoint}")
    print(f"mode {report.mode}: {len(report.products)} products, regions {report.regions}, {report.views} views each; "
          f"loss {report.loss_first:.3f} -> {report.loss_last:.3f}; {report.seconds['total']} s")
    print(f"use it: --head {report.checkpoint}  (or LIVEMATCH_HEAD)")
    return 0


def cmd_train_garments(args: argparse.Namespace) -> int:
    from engine.eval.detection import detection_ap
    from engine.training.garments import GarmentConfig, train_garment_head
    from engine.pipeline.engine import Engine
    from engine.training.data import annotated_images

    settings, catalogue, products = _training_catalogue(args)
    engine = Engine(settings)
    head, info = train_garment_head(engine, catalogue, args.out, GarmentConfig(seed=args.seed), products,
                                    progress_bar("train-garments"), home=settings.home)
    print(f"checkpoint {info['checkpoint']}")
    print(f"{info['images']} annotated images, {info['anchors']} anchors ({info['positives']} garments); "
          f"loss {info['loss_first']:.3f} -> {info['loss_last']:.3f}; {info['seconds']} s")
    held_out = set(catalogue.products) - products
    frames = annotated_images(catalogue, held_out, shop=False) if held_out else []
    if frames:
        ap = detection_ap(engine, head, frames, settings.search.garment_top)
        print(f"AP@0.5 on {ap['images']} annotated frames of the held-out products ({ap['boxes']} boxes): "
              f"learned {ap['ap50_garment_head']:.3f}; person boxes {ap['ap50_detector_regions']:.3f}; "
              f"all windows {ap['ap50_all_windows']:.3f}")
    else:
        print("no held-out products with annotated frames: pass --exclude-products to measure AP@0.5")
    print(f"use it: --garment-model {info['checkpoint']}  (or LIVEMATCH_GARMENT_MODEL)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from engine.models import DETECTORS, embedder_names
    from engine.models.check import classify_files

    print("detectors:", ", ".join(DETECTORS))
    print("embedders:", ", ".join(embedder_names()))
    for path, top in classify_files(args.images):
        print(f"{path}: " + ", ".join(f"{name} {p:.2f}" for name, p in top))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from engine.eval.bench import run, save_last

    settings = settings_from(args)
    if args.timeline:
        import shutil
        import tempfile

        from engine.eval.bench import machine
        from engine.eval.timeline_bench import timeline_bench

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
        from engine.eval.bench import run_timeline

        results = run_timeline(settings, args.timeline_hours or 2.0)
    else:
        results = run(settings, runs=args.runs, timeline_hours=args.timeline_hours, quick=args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"figures saved for the app's speed hint: {save_last(results, settings.home)}")
    return 0


def cmd_bench_index(args: argparse.Namespace) -> int:
    from engine.eval.bench_index import as_dicts, format_row, run

    rows = run([int(s) for s in args.sizes.split(",")], dim=args.dim, n_queries=args.queries,
               n_trees=args.n_trees, engines=tuple(args.engines.split(",")),
               print_row=lambda r: print(format_row(r), flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(as_dicts(rows), indent=1))
    return 0


def cmd_bench_ray(args: argparse.Namespace) -> int:
    from engine.eval.bench_ray import as_dicts, format_row, run

    rows = run(args.images, tuple(int(w) for w in args.workers.split(",")), plain=not args.no_plain,
               settings=settings_from(args), print_row=lambda r: print(format_row(r), flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(as_dicts(rows), indent=1))
    return 0


def cmd_domain_mean(args: argparse.Namespace) -> int:
    from engine.io.catalogue import load_catalogue
    from engine.models.domain import shipped_path
    from engine.pipeline.engine import Engine
    from engine.training.domain import compute_domain_mean

    settings = settings_from(args)
    catalogue = load_catalogue(args.dataset)
    clips = sorted(str(c.path) for c in catalogue.clips.values() if c.path)
    if not clips:
        raise EngineError(f"{args.dataset}: no readable clips to average")
    engine = Engine(settings)
    out = compute_domain_mean(engine, clips, args.out or shipped_path(engine.embedder.key), progress_bar("domain-mean"))
    print(f"livestream mean of the detected regions of {len(clips)} clips: {out}")
    return 0


def _timeline_params(args: argparse.Namespace, settings):
    from engine.pipeline.timeline import TimelineParams

    defaults = TimelineParams()
    return TimelineParams(every_s=settings.detection.stream_every,
                          switch_penalty=defaults.switch_penalty if args.switch_penalty is None else args.switch_penalty,
                          none_below=defaults.none_below if args.none_below is None else args.none_below,
                          decode=args.decode, coarse_s=max(0.0, float(getattr(args, "coarse_s", defaults.coarse_s))))


def format_segments(timeline) -> str:
    """The segments as a table, one line each."""
    from engine.pipeline.timeline import format_time

    lines = [f"{'#':>3}  {'start':>8}  {'end':>8}  {'product':<10} {'name':<28} {'evidence':>8} {'margin':>7} "
             f"{'runner-up':<10} {'votes':>5}  verdict"]
    for i, s in enumerate(timeline.segments, 1):
        lines.append(f"{i:>3}  {format_time(s.start_s):>8}  {format_time(s.end_s):>8}  {s.product_id or '-':<10} "
                     f"{s.name[:28]:<28} {s.mean_evidence:8.3f} {s.margin:7.3f} {s.runner_up or '-':<10} "
                     f"{f'{s.votes}/{s.frames}':>5}  {s.verdict}")
    return "\n".join(lines)


def cmd_timeline(args: argparse.Namespace) -> int:
    from engine.io.video import is_url
    from engine.pipeline.timeline import TimelineRun, format_time
    from engine.workspace import ready_engine

    settings = settings_from(args)
    source = args.video if is_url(args.video) else Path(args.video)
    if args.live and not is_url(args.video):
        print("note: --live on a file reads it as a stream (sequentially, as it would play)", file=sys.stderr)
    params = _timeline_params(args, settings)
    if args.live:  # one coarse window (or frame) per step, the coarse interval short enough to answer soon
        from dataclasses import replace

        from engine.pipeline.timeline import LIVE_COARSE_S

        params = replace(params, decode="sequential" if params.decode == "auto" else params.decode, batch=1,
                         coarse_s=min(params.coarse_s, LIVE_COARSE_S))
    engine = ready_engine(settings, progress=progress_bar("index"))
    run = TimelineRun(engine, source, params)
    bar = None
    if not args.live:
        from tqdm import tqdm

        total = round(run.duration_s, 1) if run.duration_s > 0 else None
        hidden = not sys.stderr.isatty() and os.environ.get("LIVEMATCH_PROGRESS") != "1"  # as progress_bar
        bar = tqdm(total=total, desc=run.label[:24], unit="s", file=sys.stderr, disable=hidden,
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
    from engine.eval.timeline import join_clips, run_timeline, score_timeline
    from engine.io.catalogue import load_catalogue
    from engine.workspace import ready_engine

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
