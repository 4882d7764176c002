"""The correction commands: ``correct`` stores livestream examples, ``corrections`` lists and removes them,
``eval-corrections`` measures what they buy on a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import progress_bar, settings_from
from engine.errors import EngineError
from engine.eval.corrections import evaluate_corrections, format_bound, format_rows
from engine.io.video import is_url, probe, sample_indices
from engine.pipeline.correcting import REGION_CHOICES, ClipCorrection, check_product, correct_clip
from engine.workspace import catalogue_root, corrections_store, ready_engine


def _positions(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise EngineError(f"--frames {value!r}: expected comma-separated numbers such as 0,1,2") from None


def cmd_correct(args: argparse.Namespace) -> int:
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
