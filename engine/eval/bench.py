"""Pipeline benchmark: prints what it measures on this machine (CPU, or CUDA when present).

decode frames/s, detection frames/s, embedding regions/s by batch size, end-to-end latency of a
20-second 540x960 clip at 10 frames (warm; median and spread over runs, by stage), catalogue
indexing images/s (annotated regions, and detection), peak memory (of the bench, and of a fresh process serving
matches), and the app's start-up with the built-in demo already built (engine.eval.startup).
"""

from __future__ import annotations

import platform
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import Settings
from engine.pipeline.engine import STAGES

# The targets on the 2-core CPU: (result key, at most / at least, value); the embedding target is a ratio.
TARGETS = (
    ("e2e_s.default", "<=", 1.0),
    ("embed_per_s.default / embed_per_s.torch", ">=", 2.5),
    ("index_images_per_s", ">=", 60.0),
    ("peak_rss_mb", "<=", 1500.0),
    ("startup_s.first_page", "<=", 3.0),
)
# The targets on one data-centre GPU (an H100): the same bench's keys, compared only when it ran on a GPU
# (``results["gpu"]``: the embedder's device was CUDA), else printed as not measured.
GPU_TARGETS = (
    ("embed_per_s.default", ">=", 5000.0),  # regions/s, the default runtime's best batch
    ("batch_clips_per_s_fast", ">=", 20.0),  # clips/s, 8 clips of 10 frames, fast windows
)


def check_targets(results: dict, out: Callable[[str], None]) -> None:
    """Print each target beside what this run measured, met or not; the GPU targets only where a GPU ran."""
    _check(TARGETS, results, out, "")
    if results.get("gpu"):
        _check(GPU_TARGETS, results, out, "GPU ")
    else:
        for key, op, target in GPU_TARGETS:
            out(f"target GPU {key} {op} {target:g}: not measured (no GPU in this run)")


def _check(targets: tuple, results: dict, out: Callable[[str], None], prefix: str) -> None:
    for key, op, target in targets:
        if "/" in key:
            a, b = (k.strip() for k in key.split("/"))
            value = results.get(a, 0.0) / results[b] if results.get(b) else None
        else:
            value = results.get(key)
        if value is None:
            out(f"target {prefix}{key} {op} {target:g}: not measured")
            continue
        met = value <= target if op == "<=" else value >= target
        out(f"target {prefix}{key} {op} {target:g}: {value:.2f} ({'met' if met else 'NOT met'})")


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(fn: Callable[[], int], min_s: float = 1.0) -> float:
    """Items per second of fn (which returns how many items it processed), repeated for min_s."""
    fn()  # warm
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s:
        n += fn()
    return n / (time.perf_counter() - t0)


def _bench_detection(settings: Settings, clip: str, results: dict, out: Callable[[str], None]):  # -> Detector
    """Decode and detection rates on the clip's 10 sampled frames; returns the detector."""
    from engine.io.video import sample_frames
    from engine.models import get_detector

    fps = _rate(lambda: len(sample_frames(clip, 10)))
    results["decode_frames_per_s"] = fps
    out(f"decode (seek to 10 sampled frames): {fps:8.1f} frames/s")

    detector = get_detector(settings.models.detector)
    frames = [f.image for f in sample_frames(clip, 10)]
    from engine.models.detectors import detect_side_by_side

    det_fps = _rate(lambda: len(detector.detect(frames, settings.detection.det_threshold)))
    results["detect_frames_per_s"] = det_fps
    out(f"detect ({settings.models.detector}, batch 10): {det_fps:8.1f} frames/s")
    sbs_fps = _rate(lambda: len(detect_side_by_side(detector, frames, settings.detection.det_threshold)))
    results["detect_side_by_side_frames_per_s"] = sbs_fps
    out(f"detect, portrait frames side by side in pairs: {sbs_fps:8.1f} frames/s"
        + ("" if settings.detection.side_by_side else " (not used: side_by_side is off)"))
    return detector


def _runtimes(settings: Settings) -> tuple[str, list[tuple[str, str, str]]]:
    """(the default runtime, every (label, runtime, precision) worth comparing here): torch, and each runtime of
    the exported model that is installed (OpenVINO at its default precision and at f32)."""
    from engine.models.openvino_rt import openvino_available, resolve_precision
    from engine.models.runtime import onnxruntime_available, resolve_runtime

    m = settings.models
    default = resolve_runtime(m.embedder, m.device, m.runtime)
    tried = [("torch", "torch", "auto")]
    if resolve_runtime(m.embedder, m.device, "auto") != "torch" or default != "torch":
        if onnxruntime_available():
            tried.append(("onnxruntime", "onnxruntime", "auto"))
        if openvino_available():
            tried.append(("openvino", "openvino", m.precision))
            if resolve_precision(m.precision) != "f32":
                tried.append(("openvino_f32", "openvino", "f32"))
    return default, tried


def _bench_embedding(settings: Settings, results: dict, out: Callable[[str], None]):  # -> Embedder
    """Embedding rates of random crops by batch size, for each runtime (``embed_per_s.<runtime>``: the best over
    batches of 1, 8 and 32; ``embed_per_s.default``: the default runtime's); returns the default embedder."""
    from engine.models import get_embedder

    m = settings.models
    default, tried = _runtimes(settings)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (300, 200, 3), dtype=np.uint8) for _ in range(128)]
    results["embed_regions_per_s"], results["embed_regions_per_s_by_runtime"] = {}, {}
    for label, runtime, precision in tried:
        emb = get_embedder(m.embedder, m.device, runtime=runtime, precision=precision)
        sizes = (1, 8, 32, 128) if label == default else (1, 8, 32)
        rates = {bs: _rate(lambda: len(emb.embed(crops[:bs], bs)), min_s=1.5) for bs in sizes}
        if label == default:
            results["embed_regions_per_s"] = rates
        results["embed_regions_per_s_by_runtime"][label] = rates
        results[f"embed_per_s.{label}"] = max(rates[bs] for bs in (1, 8, 32))
        shown = f"{runtime} {getattr(emb, 'precision', 'f32')}" if runtime == "openvino" else runtime
        for bs, r in rates.items():
            out(f"embed ({emb.name}, {shown} on {emb.device}) batch {bs:>3}: {r:8.1f} regions/s")
    results["embed_per_s.default"] = results[f"embed_per_s.{default}"]
    if default != "torch":
        out(f"embedding, default runtime ({default}) against torch: "
            f"{results['embed_per_s.default'] / results['embed_per_s.torch']:.2f}x the regions/s")
    return get_embedder(m.embedder, m.device, runtime=default, precision=m.precision)


def _bench_indexing(settings: Settings, catalogue, detector, emb, work: Path, results: dict,
                    out: Callable[[str], None]) -> None:
    """Cold-cache catalogue indexing rates, from annotated regions and from detection."""
    from engine.index.cache import EmbeddingCache
    from engine.pipeline.catalogue import catalogue_regions
    from engine.pipeline.engine import Engine

    for label, cache_root, use_annotations in (("annotated regions", "ann", True), ("detection", "det", False)):
        cat = catalogue if use_annotations else replace(
            catalogue, products={k: replace(p, regions=()) for k, p in catalogue.products.items()})
        engine = Engine(settings, detector, emb)
        t0 = time.perf_counter()
        catalogue_regions(engine, cat, cache=EmbeddingCache(work / f"cache-{cache_root}"))
        rate = cat.n_images / (time.perf_counter() - t0)
        results[f"index_images_per_s_{cache_root}"] = rate
        if use_annotations:
            results["index_images_per_s"] = rate  # the figure the targets name: annotated regions, cold cache
        out(f"catalogue indexing, {label}: {rate:8.1f} images/s ({cat.n_images} images, cold cache)")


def _end_to_end(eng, clip: str, runs: int, label: str, out: Callable[[str], None]) -> dict:
    """Warm end-to-end seconds of one clip over ``runs`` runs: median, min, max and median by stage."""
    eng.match(clip)  # warm
    timings = [eng.match(clip).timings for _ in range(runs)]
    totals = [t["total"] for t in timings]
    med = statistics.median(totals)
    stages = {k: statistics.median(t[k] for t in timings) for k in STAGES}
    out(f"end to end, {label}, 10 frames, {runs} warm runs: median {med:.2f} s "
        f"(min {min(totals):.2f}, max {max(totals):.2f}); " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    return {"median_s": med, "min_s": min(totals), "max_s": max(totals), "stages": stages}


def _bench_runtimes_end_to_end(settings: Settings, clip: str, detector, emb, index, runs: int, results: dict,
                               out: Callable[[str], None]) -> None:
    """``e2e_s.default``: median seconds per clip with the default settings (the accurate mode's run when it is
    the same); ``e2e_s.torch_default``: the same settings with the torch runtime."""
    from engine.models import get_embedder
    from engine.pipeline.engine import Engine

    default = settings.with_(frames=10)
    if default == settings.with_(frames=10, windows="exhaustive") and "end_to_end_accurate" in results:
        results["e2e_s.default"] = results["end_to_end_accurate"]["median_s"]
    else:
        timed = _end_to_end(Engine(default, detector, emb, index), clip, runs, "default settings", out)
        results["e2e_s.default"] = timed["median_s"]
    if _runtimes(settings)[0] == "torch":
        results["e2e_s.torch_default"] = results["e2e_s.default"]
        return
    torch_emb = get_embedder(settings.models.embedder, settings.models.device, runtime="torch")
    eng = Engine(default.with_(runtime="torch"), detector, torch_emb, index)
    results["e2e_s.torch_default"] = _end_to_end(eng, clip, runs, "default settings, torch runtime", out)["median_s"]
    out(f"end to end, default settings: {results['e2e_s.default']:.2f} s ({_runtimes(settings)[0]}), "
        f"{results['e2e_s.torch_default']:.2f} s (torch)")


def _bench_matching(settings: Settings, catalogue, clip: str, detector, emb, work: Path, runs: int, results: dict,
                    out: Callable[[str], None]) -> None:
    """End-to-end latency of each search mode (warm, by stage), then batch throughput of two of them."""
    from engine.pipeline.engine import Engine
    from engine.training.garments import GarmentConfig, train_garment_head

    engine = Engine(settings, detector, emb)
    engine.build_index(catalogue, work / "index")
    out("training a garment head on the generated catalogue (for the learned-region modes) ...")
    _, garment = train_garment_head(engine, catalogue, work / "garment-head.pt", GarmentConfig())
    modes = (("accurate", {"windows": "exhaustive"}), ("fast", {"windows": "refined", "refine_top": 3}),
             ("learned regions", {"garment_model": garment["checkpoint"], "windows": "exhaustive"}),
             ("learned regions, pooled", {"garment_model": garment["checkpoint"], "windows": "pooled"}))
    for mode, overrides in modes:
        eng = Engine(settings.with_(frames=10, **overrides), detector, emb, engine.index)
        results[f"end_to_end_{mode.replace(' ', '_').replace(',', '')}"] = _end_to_end(eng, clip, runs, mode, out)
    _bench_runtimes_end_to_end(settings, clip, detector, emb, engine.index, runs, results, out)
    batch = [clip] * 8
    for mode, overrides in (modes[1], modes[-1]):  # fast, and learned regions pooled
        eng = Engine(settings.with_(frames=10, **overrides), detector, emb, engine.index)
        t0 = time.perf_counter()
        n = sum(1 for _ in eng.match_many(batch))
        rate = n / (time.perf_counter() - t0)
        results[f"batch_clips_per_s_{mode.replace(' ', '_').replace(',', '')}"] = rate
        out(f"batch matching ({mode}), {n} clips of 10 frames, decode overlapped: {rate:6.2f} clips/s")


def run_timeline(settings: Settings, hours: float, out: Callable[[str], None] = print,
                 workdir: Path | None = None) -> dict:
    """Only the long-video timeline benchmark (``bench --only timeline``): result key ``timeline``."""
    from engine.eval.timeline import long_video_bench

    work = Path(workdir or tempfile.mkdtemp(prefix="livematch-bench-"))
    results: dict = {"machine": machine()}
    out(f"machine: {results['machine']}")
    results["timeline"] = long_video_bench(settings, hours, work, out)
    return results


def run(settings: Settings, runs: int = 5, out: Callable[[str], None] = print, workdir: Path | None = None,
        timeline_hours: float = 0.0) -> dict:
    """Run every benchmark on a generated clip and catalogue, print each result, and return them all."""
    from engine.io.catalogue import load_catalogue
    from engine.io.demo import generate_demo
    from engine.eval.startup import measure_serving_rss, measure_startup

    work = Path(workdir or tempfile.mkdtemp(prefix="livematch-bench-"))
    results: dict = {"machine": machine(), "settings": {"windows": settings.search.windows.value}}
    out(f"machine: {results['machine']}")
    out("generating a 20 s 540x960 clip and a 12-product catalogue ...")
    demo = generate_demo(work / "demo", n_products=12, n_clips=1, frames_per_clip=400, frame_size=(540, 960), seed=7)
    clip = str(next((demo / "video").glob("*.mp4")))
    catalogue = load_catalogue(demo)

    detector = _bench_detection(settings, clip, results, out)
    emb = _bench_embedding(settings, results, out)
    results["gpu"] = str(getattr(emb, "device", "cpu")).startswith("cuda")
    _bench_indexing(settings, catalogue, detector, emb, work, results, out)
    _bench_matching(settings, catalogue, clip, detector, emb, work, runs, results, out)
    results["peak_rss_mb_bench"] = peak_memory_mb()
    out(f"peak memory (RSS) of this bench process (every model, the batch-128 embedding run): "
        f"{results['peak_rss_mb_bench']:.0f} MB")
    measure_serving_rss(settings, demo, work / "index", clip, results, out)
    measure_startup(settings.home, work, results, out)
    if timeline_hours > 0:
        from engine.eval.timeline import long_video_bench

        results["timeline"] = long_video_bench(settings, timeline_hours, work, out)
    check_targets(results, out)
    return results
