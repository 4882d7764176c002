"""Command line, argparse and printing only: python -m engine {demo,build-index,match,timeline,timeline-eval,correct,corrections,
eval-corrections,evaluate,domain-mean,train-embedding,train-garments,bench,bench-index,bench-ray,models} ...

Every subcommand has --help; bad input gives a one-line ``error: ...`` and exit status 2, never a traceback."""

from __future__ import annotations

import importlib
import sys

from engine.cli.parser import build_parser
from engine.errors import EngineError

__all__ = ["COMMANDS", "build_parser", "main"]

# What runs each subcommand, as "module:function". The command line's one lazy import: a command's module, and the
# library it needs (torch, OpenVINO, training, ...), is imported only when that command runs, so that --help and a
# mistyped option answer at once. Every other import of engine/cli is at the top of its module.
COMMANDS = {
    "demo": "engine.cli.catalogue:cmd_demo",
    "build-index": "engine.cli.catalogue:cmd_build_index",
    "models": "engine.cli.catalogue:cmd_models",
    "domain-mean": "engine.cli.catalogue:cmd_domain_mean",
    "match": "engine.cli.match:cmd_match",
    "evaluate": "engine.cli.evaluate:cmd_evaluate",
    "timeline": "engine.cli.timeline:cmd_timeline",
    "timeline-eval": "engine.cli.timeline:cmd_timeline_eval",
    "correct": "engine.cli.corrections:cmd_correct",
    "corrections": "engine.cli.corrections:cmd_corrections",
    "eval-corrections": "engine.cli.corrections:cmd_eval_corrections",
    "train-embedding": "engine.cli.train:cmd_train_embedding",
    "train-garments": "engine.cli.train:cmd_train_garments",
    "bench": "engine.cli.bench:cmd_bench",
    "bench-index": "engine.cli.bench:cmd_bench_index",
    "bench-ray": "engine.cli.bench:cmd_bench_ray",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        module, name = COMMANDS[args.command].split(":")
        return int(getattr(importlib.import_module(module), name)(args))
    except (EngineError, KeyError, ValueError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
