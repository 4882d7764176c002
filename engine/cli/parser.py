"""The command line's arguments: each subcommand's own options, written here, and the settings' options, made from
engine/config.py's fields (engine.cli.common.add_settings_options). What runs each subcommand is named in
engine.cli.COMMANDS."""

from __future__ import annotations

import argparse

from engine.choices import REGION_CHOICES
from engine.cli.common import add_settings_options
from engine.io.sampler import DECODE_MODES
from engine.pipeline.timeline import LIVE_COARSE_S, TimelineParams

JSON_HELP = "also write the figures as JSON here"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Livestream product recognition.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_matching_commands(sub)
    _add_timeline_commands(sub)
    _add_evaluate_command(sub)
    _add_correction_commands(sub)
    _add_training_commands(sub)
    _add_other_commands(sub)
    return parser


def _add_matching_commands(sub) -> None:
    p = sub.add_parser("demo", help="generate the built-in demo catalogue and clips")
    p.add_argument("--out", help="output folder (default: ~/.cache/livematch/demo)")
    p.add_argument("--products", type=int, default=8)
    p.add_argument("--clips", type=int, default=4, help="clips of catalogue products (default: 4)")
    p.add_argument("--absent", type=int, default=1, help="clips of products left out of the catalogue (default: 1)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("build-index", help="embed a catalogue and write its index (Annoy, FAISS or Milvus)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="embed the images on Ray: a local Ray on this machine's cores, or the cluster at ADDRESS")
    p.add_argument("--ray-workers", dest="ray_workers", type=int, default=0,
                   help="Ray workers, each holding one loaded embedder (default: the cluster's CPUs, at most 8)")
    p.add_argument("--all-problems", dest="all_problems", action="store_true",
                   help="print every file skipped or partly read (by default the first 10)")
    add_settings_options(p)

    p = sub.add_parser("match", help="rank catalogue products for a clip (or every clip in a folder)")
    p.add_argument("clip", help="a video file, or a folder of them (implies --batch)")
    p.add_argument("--batch", action="store_true", help="match every clip in the folder CLIP, decoding ahead")
    p.add_argument("--json", help="write the full result as JSON here")
    p.add_argument("--live", action="store_true",
                   help="read CLIP as a live stream: a frame every --every seconds, the ranking printed as it changes")
    p.add_argument("--max-frames", dest="max_frames", type=int, default=0,
                   help="with --live: stop after this many frames (default: until the stream ends or Ctrl-C)")
    add_settings_options(p)


def _add_evaluate_command(sub) -> None:
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
    p.add_argument("--open-set", dest="open_set", action="store_true",
                   help="also match each clip with its product removed from the catalogue (two halves) and count "
                        "the clips still called confident")
    p.add_argument("--leave-clip-out-mean", dest="leave_clip_out_mean", action="store_true",
                   help="centre each clip on a livestream mean computed from the other clips only (no leakage)")
    add_settings_options(p)


def _add_timeline_commands(sub) -> None:
    p = sub.add_parser("timeline", help="which product, when: a timeline of product segments over a whole video")
    p.add_argument("video", help="a video file or a stream URL (http(s), HLS, rtsp, rtmp)")
    p.add_argument("--json", help="write the timeline (segments and per-frame evidence) as JSON here")
    p.add_argument("--csv", help="write the segments as CSV here")
    p.add_argument("--live", action="store_true",
                   help="read VIDEO as a live stream, printing each segment once the next one has begun")
    _timeline_options(p)
    add_settings_options(p)

    p = sub.add_parser("timeline-eval", help="join clips whose products are known and score their timelines")
    p.add_argument("--dataset", required=True, help="a dataset in the Tianchi layout (its clips and catalogue)")
    p.add_argument("--join", action="append", required=True, metavar="ID,ID,...",
                   help="clip ids to join in this order (repeat the option for more videos)")
    p.add_argument("--out", help="where the joined videos are written (default: <home>/timeline-eval)")
    p.add_argument("--width", type=int, default=540, help="the joined video's width (default 540)")
    p.add_argument("--height", type=int, default=960, help="the joined video's height (default 960)")
    p.add_argument("--json", help="write the scores as JSON here")
    _timeline_options(p)
    add_settings_options(p)


def _timeline_options(p: argparse.ArgumentParser) -> None:
    defaults = TimelineParams()
    p.add_argument("--switch-penalty", dest="switch_penalty", type=float,
                   help=f"evidence a change of product must gain (default {defaults.switch_penalty:g})")
    p.add_argument("--none-below", dest="none_below", type=float,
                   help=f"evidence under which a frame leans to 'no product' (default {defaults.none_below:g})")
    p.add_argument("--decode", choices=DECODE_MODES, default="auto",
                   help="with --coarse 0: seek to each sampled frame, or read sequentially (default auto: seek in a "
                        "file whose samples are 30 frames or more apart)")
    p.add_argument("--coarse", dest="coarse_s", type=float, default=defaults.coarse_s,
                   help=f"seconds between coarse samples: frames in between are matched only where the answer changes "
                        f"(default {defaults.coarse_s:g}; with --live at most {LIVE_COARSE_S:g}; 0: a frame every "
                        "--every seconds, as before)")


def _add_correction_commands(sub) -> None:
    p = sub.add_parser("correct", help="store frames of a clip as livestream examples of a product (no rebuild)")
    p.add_argument("clip", help="a video file (or URL)")
    p.add_argument("--product", required=True, help="the product the clip shows")
    p.add_argument("--frames", dest="positions",
                   help="comma-separated positions among the sampled frames, from 0 (default: every sampled frame)")
    p.add_argument("--regions", default="product", choices=REGION_CHOICES,
                   help="which regions of a frame are stored (default product: the window closest to the product)")
    add_settings_options(p, flags={"frames": ("--sample",)})

    p = sub.add_parser("corrections", help="list the livestream examples of the catalogue's index, or remove some")
    p.add_argument("--remove", help="comma-separated correction ids to remove")
    p.add_argument("--clear", action="store_true", help="remove every livestream example")
    add_settings_options(p)

    p = sub.add_parser("eval-corrections", help="correct the first half of each clip, match the second: before/after")
    p.add_argument("--dataset", required=True, help="a dataset in the Tianchi layout")
    p.add_argument("--regions", default=",".join(REGION_CHOICES),
                   help=f"comma-separated region choices to compare (default {','.join(REGION_CHOICES)})")
    p.add_argument("--offsets", default="", help="comma-separated example offsets to compare (default: none)")
    add_settings_options(p)


def _add_training_commands(sub) -> None:
    for name, text in (("train-embedding", "train a projection head with triplet loss"),
                       ("train-garments", "train the garment-region head; AP@0.5 on held-out products")):
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
        add_settings_options(p, skip=("seed",))


def _add_other_commands(sub) -> None:
    p = sub.add_parser("domain-mean", help="compute the livestream-domain mean that queries are centred on")
    p.add_argument("--dataset", required=True, help="a dataset whose clips are used (their regions, no labels)")
    p.add_argument("--out", help="output .npy (default: the embedder's shipped file in engine/models/data/)")
    add_settings_options(p)

    p = sub.add_parser("bench", help="benchmark decode, detection, embedding, indexing and end-to-end latency")
    p.add_argument("--runs", type=int, default=5, help="warm end-to-end runs (default 5)")
    p.add_argument("--timeline-hours", dest="timeline_hours", type=float, default=0.0,
                   help="also build the timeline of a generated video this many hours long: video-seconds per "
                        "wall-second and peak RSS (slow: docs/timeline.md; default: off)")
    p.add_argument("--only", choices=("all", "timeline"), default="all",
                   help="timeline: only the long-video timeline benchmark (2 hours unless --timeline-hours)")
    p.add_argument("--timeline", action="store_true",
                   help="only the timeline benchmark: a generated 10-minute video with 9 product changes, coarse to "
                        "fine against a frame every 2 s (seconds per video hour, peak RSS, boundary error, accuracy, "
                        "live latency)")
    p.add_argument("--timeline-parts", dest="timeline_parts", type=int, default=10,
                   help="with --timeline: parts of 60 s in the video (default 10)")
    p.add_argument("--json", help=JSON_HELP)
    p.add_argument("--quick", action="store_true",
                   help="only what the end-to-end and embedding targets name (for a slow or busy machine)")
    add_settings_options(p)

    p = sub.add_parser("bench-index", help="benchmark Annoy against exact search, FAISS, hnswlib and Milvus Lite")
    p.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated index sizes")
    p.add_argument("--dim", type=int, default=320)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--n-trees", dest="n_trees", type=int, default=50)
    p.add_argument("--engines", default="exact,annoy,faiss,hnswlib,milvus")
    p.add_argument("--json", help=JSON_HELP)

    p = sub.add_parser("bench-ray", help="images/s of build-index --ray with 1, 2, ... local workers")
    p.add_argument("--images", type=int, default=2000, help="generated catalogue images (default 2000)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--no-plain", dest="no_plain", action="store_true", help="skip the in-process reference run")
    p.add_argument("--json", help=JSON_HELP)
    add_settings_options(p)

    p = sub.add_parser("models", help="list the models and classify images with the ImageNet head")
    p.add_argument("images", nargs="*", help="image files to classify")
