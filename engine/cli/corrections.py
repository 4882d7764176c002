"""The correction commands: ``correct`` stores livestream examples, ``corrections`` lists and removes them,
``eval-corrections`` measures what they buy on a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import add_model_options, progress_bar, settings_from
from engine.errors import EngineError


def add_correction_commands(sub) -> None:
    from engine.pipeline.correcting import REGION_CHOICES

    p = sub.add_parser("correct", help="store frames of a clip as livestream examples of a product (no rebuild)")
    p.add_argument("clip", help="a video file (or URL)")
    p.add_argument("--product", required=True, help="the product the clip shows")
    p.add_argument("--frames", dest="positions",
                   help="comma-separated positions among the sampled frames, from 0 (default: every sampled frame)")
    p.add_argument("--regions", default="product", choices=REGION_CHOICES,
                   help="which regions of a frame are stored (default product: the window closest to the product)")
    add_model_options(p, frames_flag="--sample")
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser("corrections", help="list the livestream examples of the catalogue's index, or remove some")
    p.add_argument("--remove", help="comma-separated correction ids to remove")
    p.add_argument("--clear", action="store_true", help="remove every livestream example")
    add_model_options(p)
    p.set_defaults(func=cmd_corrections)

    p = sub.add_parser("eval-corrections", help="correct the first half of each clip, match the second: before/after")
    p.add_argument("--dataset", required=True, help="a dataset in the Tianchi layout")
    p.add_argument("--regions", default=",".join(REGION_CHOICES),
                   help=f"comma-separated region choices to compare (default {','.join(REGION_CHOICES)})")
    p.add_argument("--offsets", default="", help="comma-separated example offsets to compare (default: none)")
    add_model_options(p)
    p.set_defaults(func=cmd_eval_corrections)


def _positions(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise EngineError(f"--frames {value!r}: expected comma-separated numbers such as 0,1,2") from None


def cmd_correct(args: argparse.Namespace) -> int:
    from engine.io.video import is_url, probe, sample_indices
    from engine.pipeline.correcting import ClipCorrection, check_product, correct_clip
    from engine.workspace import ready_engine

    settings = settings_from(args)
    clip = args.clip if is_url(args.clip) else Path(args.clip)
    positions = _positions(args.positions)
    frames = None
    if positions is not None:
        sampled = sample_indices(probe(clip).frame_count, settings.detection.frames)
        bad = [i for i in positions if i < 0 or i >= len(sampled)]
        if bad:
            raise EngineError(f"--frames: position {bad[0]} is not one of the {len(sampled)} sampled frames "
                              f"(0 to {len(sampled) - 1})")
        frames = [sampled[i] for i in positions]
    engine = ready_engine(settings, progress=progress_bar("index"))
    check_product(engine, args.product, args.regions)
    stored = correct_clip(engine, ClipCorrection(clip, args.product, frames, args.regions))
    name = Path(str(clip)).name
    if not stored:
        print(f"nothing stored: these frames of {name} are already livestream examples of {args.product}")
        return 0
    n = len(stored)
    print(f"stored {n} livestream example{'s' if n != 1 else ''} of {args.product} from {name}: "
          f"frame{'s' if n != 1 else ''} " + ", ".join(f"#{c.frame_index}" for c in stored))
    for c in stored:
        print(f"  {c.correction_id}  frame #{c.frame_index}  {len(c.boxes)} region(s)")
    return 0


def _store(args: argparse.Namespace):
    from engine.workspace import catalogue_root, corrections_store

    settings = settings_from(args)
    return corrections_store(settings, catalogue_root(settings))


def cmd_corrections(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.remove or args.clear:
        ids = ["all"] if args.clear else [i.strip() for i in args.remove.split(",") if i.strip()]
        removed = store.remove(ids)
        print(f"removed {len(removed)} livestream example(s)")
        return 0
    records = store.records()
    if not records:
        print(f"no livestream examples in {store.folder}")
        return 0
    print(f"{'id':<24} {'product':<12} {'clip':<28} {'frame':>6} {'regions':>7}  added")
    for c in records:
        print(f"{c.correction_id:<24} {c.product_id:<12} {c.clip[:28]:<28} {c.frame_index:>6} {len(c.boxes):>7}  "
              f"{c.added_at[:19].replace('T', ' ')}")
    return 0


def cmd_eval_corrections(args: argparse.Namespace) -> int:
    from engine.eval.corrections import evaluate_corrections, format_bound, format_rows
    from engine.pipeline.correcting import REGION_CHOICES

    choices = tuple(r.strip() for r in args.regions.split(",") if r.strip())
    unknown = [r for r in choices if r not in REGION_CHOICES]
    if unknown or not choices:
        raise EngineError(f"--regions: choose among {', '.join(REGION_CHOICES)}")
    try:
        offsets = tuple(float(v) for v in args.offsets.split(",") if v.strip())
    except ValueError:
        raise EngineError(f"--offsets {args.offsets!r}: expected comma-separated numbers") from None
    rows, bound = evaluate_corrections(args.dataset, settings_from(args), choices, progress_bar("eval-corrections"),
                                       offsets)
    print(format_rows(rows))
    print(format_bound(bound))
    return 0
