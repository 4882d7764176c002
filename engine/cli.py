"""Command line, argparse and printing only: python -m engine {demo,build-index,match,evaluate,train-embedding,
train-garments,bench,bench-index,models} ..."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from engine.config import Settings, Windows, windows_for_refine
from engine.errors import EngineError


def _progress_bar(desc: str) -> Callable[[str, float], None]:
    """A tqdm bar on stderr driven by (stage, fraction) callbacks."""
    from tqdm import tqdm

    hidden = not sys.stderr.isatty() and os.environ.get("LIVEMATCH_PROGRESS") != "1"  # LIVEMATCH_PROGRESS=1 forces it
    bar = tqdm(total=100, desc=desc, bar_format="{desc:<28} {percentage:3.0f}%|{bar:30}| {elapsed}",
               file=sys.stderr, disable=hidden)
    state = {"stage": ""}

    def update(stage: str, fraction: float) -> None:
        if stage != state["stage"]:
            state["stage"] = stage
            bar.set_description_str(f"{desc}: {stage}"[:28])
        bar.n = int(round(100 * min(max(fraction, 0.0), 1.0)))
        bar.refresh()
        if stage == "done":
            bar.close()

    return update


def _settings(args: argparse.Namespace) -> Settings:
    names = Settings.field_names()
    chosen = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if getattr(args, "refine_windows", None) is not None:  # the older spelling of --windows
        chosen["windows"], chosen["refine_top"] = windows_for_refine(args.refine_windows)
    return Settings.from_env(**chosen)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalogue", help="catalogue folder (Tianchi layout or a folder per product); default: demo")
    p.add_argument("--index-dir", dest="index_dir", help="index folder (default: under ~/.cache/livematch)")
    p.add_argument("--detector", help="ssd-mobilenet-v2-coco (default) or ssd300-vgg16")
    p.add_argument("--embedder", help="efficientnet-lite0-gem (default), efficientnet-lite0 or resnet50")
    p.add_argument("--frames", type=int, help="frames sampled per clip (default 10)")
    p.add_argument("--det-threshold", dest="det_threshold", type=float, help="detection score threshold")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--windows", choices=[w.value for w in Windows],
                   help="how regions are searched for garments (default exhaustive; see README)")
    p.add_argument("--no-windows", dest="windows", action="store_const", const="whole",
                   help="match whole detected regions only (the plain baseline): --windows whole")
    p.add_argument("--refine-windows", dest="refine_windows", type=int,
                   help="-1: exhaustive; 0: pooled; k>0: refined, re-embedding the best k windows")
    p.add_argument("--head", help="projection head checkpoint from train-embedding (default: none)")
    p.add_argument("--garment-model", dest="garment_model",
                   help="garment head checkpoint from train-garments: learned garment regions (default: none)")
    p.add_argument("--category-weight", dest="category_weight", type=float,
                   help="similarity penalty for catalogue regions of another category (needs --garment-model)")
    p.add_argument("--category-source", dest="category_source", choices=("fused", "head", "knn"),
                   help="where a garment window's category comes from (default: fused head + k-NN)")


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.io.demo import default_demo_dir, generate_demo

    out = generate_demo(args.out or default_demo_dir(), n_products=args.products, n_clips=args.clips, seed=args.seed)
    print(out)
    return 0


def cmd_build_index(args: argparse.Namespace) -> int:
    from engine.io.catalogue import load_catalogue
    from engine.workspace import build_index, catalogue_root

    settings = _settings(args)
    catalogue = load_catalogue(catalogue_root(settings))
    for p in catalogue.problems:
        print(f"warning: {p}", file=sys.stderr)
    m = build_index(settings, catalogue, _progress_bar("index")).index.summary  # type: ignore[union-attr]
    print(f"index {m.build}: {m.n_products} products, {m.n_items} regions, {m.dim}-d {m.model_key}, "
          f"{m.build_seconds} s (cache hits {m.cache_hits}, misses {m.cache_misses})")
    return 0


def _print_result(result, top_k: int) -> None:
    print(f"{result.clip}  ({result.timings['total']:.2f} s)")
    for i, p in enumerate(result.ranking[:top_k], 1):
        print(f"  {i}. {p.product_id:<10} {p.name[:40]:<40} votes {p.votes:>2}  share {p.vote_share:.2f}  "
              f"sim {p.best_similarity:.3f}")


def cmd_match(args: argparse.Namespace) -> int:
    from engine.io.video import VIDEO_SUFFIXES
    from engine.workspace import ready_engine

    settings = _settings(args)
    target = Path(args.clip)
    batch = args.batch or target.is_dir()
    if batch and not target.is_dir():
        raise EngineError(f"{target}: not a folder of clips")
    clips = sorted(p for p in target.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if batch else [target]
    if batch and not clips:
        raise EngineError(f"{target}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    engine = ready_engine(settings, progress=_progress_bar("index"))
    results, failed = [], 0
    if batch:
        bar = _progress_bar("match")
        for clip, result in engine.match_many(clips, bar):
            if isinstance(result, EngineError):
                failed += 1
                print(f"error: {result}", file=sys.stderr)
                continue
            results.append(result.to_dict())
            _print_result(result, settings.search.top_k)
        bar("done", 1.0)
    else:
        result = engine.match(target, _progress_bar(target.name))
        results.append(result.to_dict())
        _print_result(result, settings.search.top_k)
    if args.json:
        Path(args.json).write_text(json.dumps(results if batch else results[0], ensure_ascii=False, indent=1))
    return 0 if results and not failed else (2 if not results else 1)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.eval.evaluate import evaluate, format_table, save_report
    from engine.workspace import report_path

    settings = _settings(args)
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
        from engine.eval.evaluate import compare, format_comparison

        print(format_comparison(compare(args.dataset, settings, progress=_progress_bar("compare"))))
        return 0
    report = evaluate(args.dataset, settings, progress=_progress_bar("evaluate"))
    for s in report.skipped:
        print(f"skipped: {s}", file=sys.stderr)
    print(format_table(report))
    out = save_report(report, args.report or report_path(settings, args.dataset))
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

    settings = _settings(args)
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
    report = train_projection(get_embedder(settings.models.embedder, settings.models.device), catalogue, args.out, config,
                              products, _progress_bar("train-embedding"), home=settings.home)
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
                                    _progress_bar("train-garments"), home=settings.home)
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
    from engine.models import DETECTORS, EMBEDDERS
    from engine.models.check import classify_files

    print("detectors:", ", ".join(DETECTORS))
    print("embedders:", ", ".join(EMBEDDERS))
    for path, top in classify_files(args.images):
        print(f"{path}: " + ", ".join(f"{name} {p:.2f}" for name, p in top))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from engine.eval.bench import run

    results = run(_settings(args), runs=args.runs)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def cmd_bench_index(args: argparse.Namespace) -> int:
    from engine.eval.bench_index import as_dicts, format_row, run

    rows = run([int(s) for s in args.sizes.split(",")], dim=args.dim, n_queries=args.queries,
               n_trees=args.n_trees, engines=tuple(args.engines.split(",")),
               print_row=lambda r: print(format_row(r), flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(as_dicts(rows), indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Livestream product recognition.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_matching_commands(sub)
    _add_training_commands(sub)
    _add_other_commands(sub)
    return parser


def _add_matching_commands(sub) -> None:
    p = sub.add_parser("demo", help="generate the built-in demo catalogue and clips")
    p.add_argument("--out", help="output folder (default: ~/.cache/livematch/demo)")
    p.add_argument("--products", type=int, default=8)
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("build-index", help="embed a catalogue and write its Annoy index")
    _add_model_options(p)
    p.set_defaults(func=cmd_build_index)

    p = sub.add_parser("match", help="rank catalogue products for a clip (or every clip in a folder)")
    p.add_argument("clip", help="a video file, or a folder of them (implies --batch)")
    p.add_argument("--batch", action="store_true", help="match every clip in the folder CLIP, decoding ahead")
    p.add_argument("--json", help="write the full result as JSON here")
    _add_model_options(p)
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("evaluate", help="match every clip of a dataset and score top-1, top-5 and MRR")
    p.add_argument("--dataset", required=True, help="a dataset in the Tianchi layout")
    p.add_argument("--report", help="JSON report path (default: ~/.cache/livematch/reports/<dataset>.json)")
    p.add_argument("--fail-under", dest="fail_under", type=float, help="exit 1 when top-1 is below this")
    p.add_argument("--compare", action="store_true",
                   help="evaluate the baseline and each change on the same data and print a comparison table")
    p.add_argument("--learned", action="store_true",
                   help="with --compare: train the learned parts per leave-products-out fold and compare them")
    p.add_argument("--folds", type=int, default=5, help="leave-products-out folds for --learned (default 5)")
    p.add_argument("--work-dir", dest="work_dir", help="where --learned keeps its fold checkpoints")
    _add_model_options(p)
    p.set_defaults(func=cmd_evaluate)


def _add_training_commands(sub) -> None:
    for name, func, text in (
        ("train-embedding", cmd_train_embedding, "train a projection head with triplet loss"),
        ("train-garments", cmd_train_garments, "train the garment-region head; AP@0.5 on held-out products"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dataset", help="annotated catalogue (Tianchi layout); default: the configured catalogue")
        p.add_argument("--out", help="checkpoint path (default: <home>/models/<name>-vNNN.pt, a new version)")
        p.add_argument("--exclude-products", dest="exclude_products",
                       help="comma-separated product ids kept out of training (leave products out)")
        p.add_argument("--seed", type=int, default=0)
        if name == "train-embedding":
            p.add_argument("--mode", default="cross-domain", choices=("cross-domain", "self-supervised"),
                           help="cross-domain: clip regions anchor shop positives (falls back to shop-only "
                                "without clip annotations); self-supervised: augmented views of each shop region")
            p.add_argument("--views", type=int, default=4, help="augmented views per region (default 4)")
            p.add_argument("--dim", type=int, default=0, help="output dimension (default: the backbone's)")
            p.add_argument("--steps", type=int, default=400)
        _add_model_options(p)
        p.set_defaults(func=func)


def _add_other_commands(sub) -> None:
    p = sub.add_parser("bench", help="benchmark decode, detection, embedding, indexing and end-to-end latency")
    p.add_argument("--runs", type=int, default=5, help="warm end-to-end runs (default 5)")
    p.add_argument("--json", help="also write the figures as JSON here")
    _add_model_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-index", help="benchmark Annoy against exact search, FAISS and hnswlib at scale")
    p.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated index sizes")
    p.add_argument("--dim", type=int, default=320)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--n-trees", dest="n_trees", type=int, default=50)
    p.add_argument("--engines", default="exact,annoy,faiss,hnswlib")
    p.add_argument("--json", help="also write the figures as JSON here")
    p.set_defaults(func=cmd_bench_index)

    p = sub.add_parser("models", help="list the models and classify images with the ImageNet head")
    p.add_argument("images", nargs="*", help="image files to classify")
    p.set_defaults(func=cmd_models)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (EngineError, KeyError, ValueError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
