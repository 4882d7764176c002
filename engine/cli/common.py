"""What every command shares: settings from the arguments, model options, progress bars."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from engine.config import Settings, Windows


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
    return Settings.from_env(**chosen)


def defaults() -> dict:
    """The settings' defaults by flat name: what the help says, so that it never disagrees with engine/config.py
    (an environment variable ``LIVEMATCH_<SETTING>`` overrides them, an option overrides both)."""
    return Settings().flat()


def add_model_options(p: argparse.ArgumentParser, frames_flag: str = "--frames") -> None:
    """The options every engine command shares; ``frames_flag`` names the sampled-frame count's option."""
    d = defaults()
    p.add_argument("--catalogue", help="catalogue folder (Tianchi layout or a folder per product); default: demo")
    p.add_argument("--index-dir", dest="index_dir", help="index folder (default: under $LIVEMATCH_HOME)")
    p.add_argument("--detector", help="ssd-mobilenet-v2-coco (on OpenCV DNN), ssd-mobilenet-v2-coco-openvino (the "
                                      f"same on OpenVINO) or ssd300-vgg16 (default {d['detector']})")
    p.add_argument("--embedder",
                   help="efficientnet-lite012-gem (the Lite0+1+2 ensemble), efficientnet-lite02-gem, "
                        "efficientnet-lite0-gem, efficientnet-lite1-gem, efficientnet-lite2-gem, efficientnet-lite0, "
                        f"resnet50, or ensemble:NAME[*W]+NAME[*W] (default {d['embedder']})")
    p.add_argument(frames_flag, dest="frames", type=int, help=f"frames sampled per clip (default {d['frames']})")
    p.add_argument("--det-threshold", dest="det_threshold", type=float,
                   help=f"detection score threshold (default {d['det_threshold']})")
    p.add_argument("--device", help=f"auto, cpu or cuda (default {d['device']})")
    p.add_argument("--runtime", choices=("auto", "torch", "onnxruntime", "openvino"),
                   help=f"embedder runtime (default {d['runtime']}; auto: the fastest installed on the CPU, torch "
                        "on a GPU)")
    p.add_argument("--precision", choices=("auto", "bf16", "int8", "f32"),
                   help=f"OpenVINO's precision (default {d['precision']}; auto: f32, as bf16, and int8 without VNNI, "
                        "lose accuracy; int8 models are quantised with NNCF on first use: docs/performance-cpu.md)")
    p.add_argument("--calibration", help="int8: the catalogue folder whose shop photos calibrate it (default: the "
                                         "catalogue served; the generated demo when there is none)")
    p.add_argument("--windows", choices=[w.value for w in Windows],
                   help=f"how regions are searched for garments (default {d['windows']}; whole: the detected "
                        "regions alone, the plain baseline)")
    p.add_argument("--refine-top", dest="refine_top", type=int,
                   help=f"with --windows refined: windows re-embedded exactly per region (default {d['refine_top']})")
    p.add_argument("--head", help="projection head checkpoint from train-embedding (default: none)")
    p.add_argument("--garment-model", dest="garment_model",
                   help="garment head checkpoint from train-garments: learned garment regions (default: none)")
    p.add_argument("--category-weight", dest="category_weight", type=float,
                   help="similarity penalty for catalogue regions of another category (needs --garment-model; "
                        f"default {d['category_weight']})")
    p.add_argument("--example-offset", dest="example_offset", type=float,
                   help="a livestream example's (correction's) similarity counts this much less "
                        f"(default {d['example_offset']})")
    p.add_argument("--example-bound", dest="example_bound", type=float,
                   help="a livestream example counts only for query windows at least this similar to it "
                        f"(cosine; default {d['example_bound']})")
    p.add_argument("--domain-mean", dest="domain_mean",
                   help=f"livestream mean queries are centred on: auto (the embedder's shipped mean; the "
                        f"ensemble has none: no centring), none, or a .npy file (default {d['domain_mean']})")
    p.add_argument("--product-pooling", dest="product_pooling", choices=("max", "mean"),
                   help="a product's similarity to a window: its best catalogue region (max) or the mean over them "
                        f"(default {d['product_pooling']})")
    p.add_argument("--rank-by", dest="rank_by", choices=("similarity", "votes"),
                   help=f"rank products by evidence summed over frames (similarity) or by one vote per frame "
                        f"(default {d['rank_by']})")
    p.add_argument("--category-source", dest="category_source", choices=("fused", "head", "knn", "family"),
                   help=f"where a garment window's category comes from: fused (head + k-NN), head, knn, or family (a "
                        f"linear garment-family head fitted on the catalogue's regions; with --category-weight) "
                        f"(default {d['category_source']})")
