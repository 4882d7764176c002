"""python scripts/compare_detectors.py [DATASET] [--seconds 20] [--raw] [--no-speed] [--e2e RUNS]

The person boxes of SSD-MobileNet-v2 COCO on OpenCV DNN (ssd-mobilenet-v2-coco, the default) and on OpenVINO
(ssd-mobilenet-v2-coco-openvino) on the sampled frames of a dataset's clips (default ../shared/data/watchlive-dev),
at the default detection threshold: how many boxes each finds, how many are paired one to one (Hungarian on IoU,
IoU > 0) and their median and lowest IoU, and how many are left unmatched; per frame (batch 10) and with the
portrait frames side by side in pairs (as matching detects them). ``--raw``: the same for OpenVINO fed the full
frames (its graph resizes them itself) instead of frames resized to 300x300 as OpenCV's blobFromImages does.

Then the speed of both on the first clip's frames, batch 10 and side by side in pairs: the calls interleaved
(A, B, A, B ...) until each has run ``--seconds``, so that a busy shared machine slows both alike; only the ratio
means something there. ``--e2e RUNS``: then whole matches of that clip (default settings, 10 frames, the dataset as
the catalogue, one index and embedder), RUNS per detector, interleaved: median seconds per clip and its detect
stage. Prefix with ``nice -n 10``; cap to AVX2 with ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import Settings  # noqa: E402
from engine.eval.detection import box_agreement  # noqa: E402
from engine.io.video import sample_frames  # noqa: E402
from engine.models.detectors import OpenCVSSD, OpenVinoSSD, detect_side_by_side  # noqa: E402


def agreement(a, b, clips: list[list], threshold: float) -> None:
    for label, run in (("batch 10", lambda d, f: d.detect(f, threshold)),
                       ("side by side", lambda d, f: detect_side_by_side(d, f, threshold))):
        found_a, found_b = [], []
        for frames in clips:
            found_a += run(a, frames)
            found_b += run(b, frames)
        print(f"  {label:13s} {box_agreement(found_a, found_b).line()}")


def speed(detectors: list, frames: list, threshold: float, seconds: float) -> None:
    for label, run in (("batch 10", lambda d: d.detect(frames, threshold)),
                       ("side by side", lambda d: detect_side_by_side(d, frames, threshold))):
        for d in detectors:
            run(d)  # warm: compiled shapes, first-call allocations
        spent = [0.0] * len(detectors)
        calls = [0] * len(detectors)
        while min(spent) < seconds:
            for k, d in enumerate(detectors):  # interleaved: A, B, A, B ...
                t = time.perf_counter()
                run(d)
                spent[k] += time.perf_counter() - t
                calls[k] += 1
        rates = [calls[k] * len(frames) / spent[k] for k in range(len(detectors))]
        print(f"  {label:13s} " + ", ".join(f"{d.name} ({d.runtime}) {r:6.1f} frames/s" for d, r in zip(detectors, rates))
              + f"; ratio {rates[1] / rates[0]:.2f}")


def end_to_end(dataset: str, clip: Path, runs: int) -> None:
    import statistics

    from engine.io.catalogue import load_catalogue
    from engine.models import get_detector
    from engine.pipeline.engine import Engine
    from engine.workspace import ready_engine

    settings = Settings.from_env(catalogue=dataset, frames=10)
    base = ready_engine(settings, load_catalogue(dataset))
    engines = [Engine(settings.with_(detector=name), get_detector(name), base.embedder, base.index)
               for name in (OpenCVSSD.name, OpenVinoSSD.name)]
    timings: list[list[dict]] = [[] for _ in engines]
    for eng in engines:
        eng.match(clip)  # warm
    for _ in range(runs):
        for k, eng in enumerate(engines):  # interleaved
            timings[k].append(eng.match(clip).timings)
    for eng, ts in zip(engines, timings):
        total = statistics.median(t["total"] for t in ts)
        stages = ", ".join(f"{k} {statistics.median(t[k] for t in ts):.3f}" for k in ts[0] if k != "total")
        print(f"  {eng.settings.models.detector:32s} median {total:.3f} s per clip ({stages})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", default=str(ROOT.parent / "shared" / "data" / "watchlive-dev"))
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of calls per detector per speed figure")
    p.add_argument("--raw", action="store_true", help="also OpenVINO fed the full frames")
    p.add_argument("--no-speed", dest="speed", action="store_false")
    p.add_argument("--no-agreement", dest="agreement", action="store_false")
    p.add_argument("--e2e", type=int, default=0, help="whole matches of the first clip per detector, interleaved")
    args = p.parse_args()
    videos = sorted((Path(args.dataset) / "video").glob("*.mp4"))
    if not videos:
        print(f"no clips under {args.dataset}/video")
        return 1
    threshold = Settings().detection.det_threshold
    clips = [[f.image for f in sample_frames(v, args.frames)] for v in videos]
    t = time.perf_counter()
    cv = OpenCVSSD()
    print(f"built {cv.name} in {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    ov = OpenVinoSSD()
    print(f"built {ov.name} in {time.perf_counter() - t:.2f} s (IR {ov.ir_event})")
    if args.agreement:
        print(f"{len(videos)} clips, {sum(map(len, clips))} frames, threshold {threshold}; "
              f"boxes {cv.name} / {ov.name}:")
        agreement(cv, ov, clips, threshold)
    if args.raw:
        raw = OpenVinoSSD(resize=False)
        print(f"boxes {cv.name} / {ov.name} fed full frames (the graph resizes them):")
        agreement(cv, raw, clips, threshold)
    print(f"compiled shapes: {ov.cache_events}")
    if args.speed:
        print(f"speed on {videos[0].name}'s {len(clips[0])} frames, interleaved, {args.seconds:.0f} s each:")
        speed([cv, ov], clips[0], threshold, args.seconds)
    if args.e2e:
        print(f"end to end on {videos[0].name}, {args.e2e} warm runs each, interleaved:")
        end_to_end(args.dataset, videos[0], args.e2e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
