"""CPU seconds per clip of set-ups, as ratios to the previous default (Lite0, 10 exhaustive windows, its shipped
livestream mean): each set-up on its own index of the catalogue, each clip matched once to warm up and then ``--runs``
times, the process's CPU seconds (user + system, every thread) per match. One process: compare the ratios, not the
seconds (the machine is shared). The figures of docs/accuracy.md, on the path without bf16:

    ONEDNN_MAX_CPU_ISA=AVX2 python scripts/cpu_per_clip.py --dataset DEV --clips 000117,065906 --runs 3 \
        --setup "embedder=efficientnet-lite0123-gem-224x176" --setup "windows=pose" ...

A set-up is ``field=value[,field=value...]`` of the settings' flat names; the previous default and the default are
always measured first.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the engine beside this folder

from engine.config import Settings  # noqa: E402
from engine.eval.bench import LITE0_PREVIOUS  # noqa: E402
from engine.io.catalogue import load_catalogue  # noqa: E402
from engine.pipeline.engine import Engine  # noqa: E402


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse(spec: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in spec.split(",") if part)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--clips", required=True, help="clip ids, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--setup", action="append", default=[], help="field=value[,field=value...]")
    args = ap.parse_args()
    catalogue = load_catalogue(args.dataset)
    clips = [str(catalogue.clips[c].path) for c in args.clips.split(",")]
    setups = [("previous default (Lite0, 10 exhaustive windows)", {**LITE0_PREVIOUS, "window_stride": 0.2}),
              ("default", {})] + [(s, parse(s)) for s in args.setup]
    work = Path(tempfile.mkdtemp(prefix="cpu-per-clip-"))
    base = None
    for n, (label, overrides) in enumerate(setups):
        settings = Settings().with_(frames=10, use_examples=False, **overrides)
        engine = Engine(settings)
        engine.build_index(catalogue, work / f"index-{n}")
        for clip in clips:
            engine.match(clip)  # warm: compiled shapes, caches
        start = cpu_s()
        for _ in range(args.runs):
            for clip in clips:
                engine.match(clip)
        per_clip = (cpu_s() - start) / (args.runs * len(clips))
        base = base or per_clip
        print(f"{per_clip:6.2f} CPU s per clip  {per_clip / base:5.2f}x  {label}", flush=True)


if __name__ == "__main__":
    main()
