"""The catalogue's commands: ``demo`` generates the built-in demo, ``build-index`` embeds a catalogue and writes its
index, ``domain-mean`` computes the livestream mean, ``models`` lists the models."""

from __future__ import annotations

import argparse
import sys

from engine.cli.common import progress_bar, settings_from
from engine.errors import EngineError
from engine.io.catalogue import ALL_PROBLEMS, load_catalogue
from engine.io.demo import default_demo_dir, generate_demo
from engine.models import DETECTORS, embedder_names
from engine.models.check import classify_files
from engine.models.domain import shipped_path
from engine.pipeline.engine import Engine
from engine.training.domain import compute_domain_mean
from engine.workspace import build_index, catalogue_root

SHOWN_PROBLEMS = 10


def cmd_demo(args: argparse.Namespace) -> int:
    out = generate_demo(args.out or default_demo_dir(), n_products=args.products, n_clips=args.clips, seed=args.seed,
                        n_absent=args.absent)
    print(out)
    return 0


def cmd_build_index(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    catalogue = load_catalogue(catalogue_root(settings))
    m = build_index(settings, catalogue, progress_bar("index"), ray_address=args.ray,  # type: ignore[union-attr]
                    ray_workers=args.ray_workers).index.summary
    print(f"index {m.build}: {m.n_products} products, {m.n_items} regions, {m.dim}-d {m.model_key}, "
          f"{m.build_seconds} s (cache hits {m.cache_hits}, misses {m.cache_misses})")
    for line in problem_report(m.problems, len(m.problems) if args.all_problems else SHOWN_PROBLEMS):
        print(line, file=sys.stderr)
    return 0


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


def cmd_domain_mean(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    catalogue = load_catalogue(args.dataset)
    clips = sorted(str(c.path) for c in catalogue.clips.values() if c.path)
    if not clips:
        raise EngineError(f"{args.dataset}: no readable clips to average")
    engine = Engine(settings)
    out = compute_domain_mean(engine, clips, args.out or shipped_path(engine.embedder.key), progress_bar("domain-mean"))
    print(f"livestream mean of the detected regions of {len(clips)} clips: {out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    print("detectors:", ", ".join(DETECTORS))
    print("embedders:", ", ".join(embedder_names()))
    for path, top in classify_files(args.images):
        print(f"{path}: " + ", ".join(f"{name} {p:.2f}" for name, p in top))
    return 0
