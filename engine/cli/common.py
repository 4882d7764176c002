"""What every command shares: settings from the arguments, model options, progress bars."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from engine.config import Settings, Windows, windows_for_refine


def progress_bar(desc: str) -> Callable[[str, float], None]:
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


def settings_from(args: argparse.Namespace) -> Settings:
    names = Settings.field_names()
    chosen = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if getattr(args, "refine_windows", None) is not None:  # the older spelling of --windows
        chosen["windows"], chosen["refine_top"] = windows_for_refine(args.refine_windows)
    return Settings.from_env(**chosen)


def add_model_options(p: argparse.ArgumentParser, frames_flag: str = "--frames") -> None:
    """The options every engine command shares; ``frames_flag`` names the sampled-frame count's option."""
    p.add_argument("--catalogue", help="catalogue folder (Tianchi layout or a folder per product); default: demo")
    p.add_argument("--index-dir", dest="index_dir", help="index folder (default: under ~/.cache/livematch)")
    p.add_argument("--detector", help="ssd-mobilenet-v2-coco (default) or ssd300-vgg16")
    p.add_argument("--embedder", help="efficientnet-lite012-gem (default: the Lite0+1+2 ensemble), efficientnet-lite0-gem, efficientnet-lite02-gem, efficientnet-lite1-gem, efficientnet-lite2-gem, efficientnet-lite0, resnet50, or ensemble:NAME[*W]+NAME[*W]")
    p.add_argument(frames_flag, dest="frames", type=int, help="frames sampled per clip (default 10)")
    p.add_argument("--det-threshold", dest="det_threshold", type=float, help="detection score threshold")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--runtime", choices=("auto", "torch", "onnxruntime", "openvino"),
                   help="embedder runtime (default auto: the fastest installed on the CPU, torch on a GPU)")
    p.add_argument("--precision", choices=("auto", "bf16", "int8", "f32"),
                   help="OpenVINO's precision (default auto: bf16 where the CPU offers it, else f32; "
                        "int8 models are quantised with NNCF on first use: docs/performance-cpu.md)")
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
    p.add_argument("--example-offset", dest="example_offset", type=float,
                   help="a livestream example's (correction's) similarity counts this much less (see README)")
    p.add_argument("--domain-mean", dest="domain_mean",
                   help="livestream mean queries are centred on: auto (shipped, default), none, or a .npy file")
    p.add_argument("--rank-by", dest="rank_by", choices=("similarity", "votes"),
                   help="rank products by evidence summed over frames (default) or by one vote per frame")
    p.add_argument("--category-source", dest="category_source", choices=("fused", "head", "knn"),
                   help="where a garment window's category comes from (default: fused head + k-NN)")
