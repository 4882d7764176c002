"""Pipeline benchmark: prints what it measures on this machine (CPU, or CUDA when present).

decode frames/s, detection frames/s, embedding regions/s by batch size, end-to-end latency of a
20-second 540x960 clip at 10 frames (warm; median and spread over runs, by stage), catalogue
indexing images/s (annotated regions, and detection), peak memory (of the bench, and of a fresh process serving
matches), and the app's start-up with the built-in demo already built (engine.eval.startup).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import Settings
from engine.eval.bench_machine import check_targets, describe_machine, load_average, machine, peak_memory_mb
from engine.eval.startup import measure_serving_rss, measure_startup
from engine.eval.timeline import long_video_bench
from engine.index.cache import EmbeddingCache
from engine.io.catalogue import load_catalogue
from engine.io.demo import generate_demo
from engine.io.video import sample_frames
from engine.models import get_detector, get_embedder
from engine.models.detectors import detect_side_by_side
from engine.models.openvino_rt import cpu_capabilities, nncf_available, openvino_available, resolve_precision
from engine.models.runtime import onnxruntime_available, resolve_runtime
from engine.pipeline.catalogue import catalogue_regions
from engine.pipeline.engine import STAGES, Engine
from engine.training.garments import GarmentConfig, train_garment_head
from engine.pipeline.sources import ClipPaths

# The previous default (``e2e_s.lite0_previous``): EfficientNet-Lite0 GeM, 10 exhaustive windows, domain mean auto.
LITE0_PREVIOUS = {"embedder": "efficientnet-lite0-gem", "windows": "exhaustive", "window_stride": 0.2,
                  "domain_mean": "auto"}
# Embedding rates are the median of this many 1.5 s windows: PyTorch's single windows moved by up to 40% between
# quiet runs (its batch of 32: 16-28 regions/s), and the embedding target is a ratio to it.
EMBED_WINDOWS = 3


def rate(fn: Callable[[], int], min_s: float = 1.0, cpu: dict | None = None, windows: int = 1) -> float:
    """Items per second of fn (which returns how many items it processed), repeated for min_s; with ``windows``,
    the median of that many windows of min_s each (one slow call weighs less). With ``cpu``, its "per_cpu_s" is set
    to the items per CPU second (every thread's; the median window's), a figure a busy machine changes less."""
    fn()  # warm
    rates, per_cpu = [], []
    for _ in range(max(1, windows)):
        n, t0, c0 = 0, time.perf_counter(), _cpu_s()
        while time.perf_counter() - t0 < min_s:
            n += fn()
        rates.append(n / (time.perf_counter() - t0))
        per_cpu.append(n / max(1e-9, _cpu_s() - c0))
    if cpu is not None:
        cpu["per_cpu_s"] = statistics.median(per_cpu)
    return statistics.median(rates)


def _bench_detection(settings: Settings, clip: str, results: dict, out: Callable[[str], None]):  # -> Detector
    """Decode and detection rates on the clip's 10 sampled frames; returns the detector."""
    fps = rate(lambda: len(sample_frames(clip, 10)))
    results["decode_frames_per_s"] = fps
    out(f"decode (seek to 10 sampled frames): {fps:8.1f} frames/s")

    detector = get_detector(settings.models.detector)
    frames = [f.image for f in sample_frames(clip, 10)]
    det_fps = rate(lambda: len(detector.detect(frames, settings.detection.det_threshold)))
    results["detect_frames_per_s"] = det_fps
    out(f"detect ({settings.models.detector}, batch 10): {det_fps:8.1f} frames/s")
    sbs_fps = rate(lambda: len(detect_side_by_side(detector, frames, settings.detection.det_threshold)))
    results["detect_side_by_side_frames_per_s"] = sbs_fps
    out(f"detect, portrait frames side by side in pairs: {sbs_fps:8.1f} frames/s"
        + ("" if settings.detection.side_by_side else " (not used: side_by_side is off)"))
    return detector


def _runtimes(settings: Settings) -> tuple[str, list[tuple[str, str, str]]]:
    """(the default runtime, every (label, runtime, precision) worth comparing here): torch, and each runtime of
    the exported model that is installed (OpenVINO at its default precision, labelled "openvino", and at each other
    precision this CPU runs: "openvino_bf16", "openvino_int8" (with NNCF), "openvino_f32")."""
    m = settings.models
    default = resolve_runtime(m.embedder, m.device, m.runtime)
    tried = [("torch", "torch", "auto")]
    if resolve_runtime(m.embedder, m.device, "auto") != "torch" or default != "torch":
        if onnxruntime_available():
            tried.append(("onnxruntime", "onnxruntime", "auto"))
        if openvino_available():
            chosen = resolve_precision(m.precision)
            tried.append(("openvino", "openvino", m.precision))
            offered = {"bf16": "BF16" in cpu_capabilities(), "int8": nncf_available(), "f32": True}
            tried += [(f"openvino_{p}", "openvino", p) for p, ok in offered.items() if ok and p != chosen]
    return default, tried


def _bench_embedding(settings: Settings, results: dict, out: Callable[[str], None],
                     quick: bool = False):  # -> Embedder
    """Embedding rates of random crops by batch size, for each runtime (``embed_per_s.<runtime>``: the best over
    batches of 1, 8 and 32; ``embed_per_s.default``: the default runtime's); returns the default embedder."""
    m = settings.models
    default, tried = _runtimes(settings)
    if quick:  # torch and the default runtime, at the engine's batch size
        tried = [t for t in tried if t[0] in ("torch", default)]
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (300, 200, 3), dtype=np.uint8) for _ in range(128)]
    results["embed_regions_per_s"], results["embed_regions_per_s_by_runtime"] = {}, {}
    for label, runtime, precision in tried:
        emb = get_embedder(m.embedder, device=m.device, runtime=runtime, precision=precision)
        sizes = (8,) if quick else (1, 8, 32, 128) if label == default else (1, 8, 32)
        rates, per_cpu = {}, {}
        for bs in sizes:
            got: dict = {}
            rates[bs] = rate(lambda: len(emb.embed(crops[:bs], bs)), min_s=1.5, cpu=got, windows=EMBED_WINDOWS)
            per_cpu[bs] = got["per_cpu_s"]
        results[f"embed_per_cpu_s.{label}"] = max(per_cpu[bs] for bs in (1, 8, 32) if bs in per_cpu)
        if label == default:
            results["embed_regions_per_s"] = rates
        results["embed_regions_per_s_by_runtime"][label] = rates
        results[f"embed_per_s.{label}"] = max(rates[bs] for bs in (1, 8, 32) if bs in rates)
        shown = f"{runtime} {getattr(emb, 'precision', 'f32')}" if runtime == "openvino" else runtime
        for bs, r in rates.items():
            out(f"embed ({emb.name}, {shown} on {emb.device}) batch {bs:>3}: {r:8.1f} regions/s "
                f"({per_cpu[bs]:.1f} per CPU second)")
    results["embed_per_s.default"] = results[f"embed_per_s.{default}"]
    results["embed_per_cpu_s.default"] = results[f"embed_per_cpu_s.{default}"]
    if default != "torch":
        out(f"embedding, default runtime ({default}) against torch: "
            f"{results['embed_per_s.default'] / results['embed_per_s.torch']:.2f}x the regions/s, "
            f"{results['embed_per_cpu_s.default'] / results['embed_per_cpu_s.torch']:.2f}x per CPU second")
    return get_embedder(m.embedder, device=m.device, runtime=default, precision=m.precision)


def _bench_indexing(settings: Settings, catalogue, detector, emb, work: Path, results: dict,
                    out: Callable[[str], None], quick: bool = False) -> None:
    """Cold-cache catalogue indexing rates, from annotated regions and from detection."""
    kinds = (("annotated regions", "ann", True), ("detection", "det", False))
    for label, cache_root, use_annotations in kinds[:1] if quick else kinds:
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
    cpu0 = _cpu_s()
    timings = [eng.match(clip).timings for _ in range(runs)]
    cpu = (_cpu_s() - cpu0) / max(1, runs)
    totals = [t["total"] for t in timings]
    med = statistics.median(totals)
    stages = {k: statistics.median(t[k] for t in timings) for k in STAGES}
    out(f"end to end, {label}, 10 frames, {runs} warm runs: median {med:.2f} s "
        f"(min {min(totals):.2f}, max {max(totals):.2f}; {cpu:.2f} CPU s per clip); "
        + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    return {"median_s": med, "min_s": min(totals), "max_s": max(totals), "cpu_s": cpu, "stages": stages}


def _cpu_s() -> float:
    """CPU seconds (user + system, every thread) this process has used: on a busy machine, where wall time counts
    the waits for a core, the work itself."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _bench_runtimes_end_to_end(settings: Settings, catalogue, clip: str, detector, emb, index, work: Path, runs: int,
                               results: dict, out: Callable[[str], None], quick: bool = False) -> None:
    """``e2e_s.default``: median seconds per clip with the default settings (the hybrid mode's run when it is
    the same); ``e2e_s.lite0_previous``: the previous default (``LITE0_PREVIOUS``) with the same runtime and
    precision, on its own index of the catalogue; ``e2e_s.torch_default``: the default settings with torch."""
    default = settings.with_(frames=10)
    if default == settings.with_(frames=10, windows="hybrid") and "end_to_end_hybrid" in results:
        results["e2e_s.default"] = results["end_to_end_hybrid"]["median_s"]
    else:
        timed = _end_to_end(Engine(default, detector, emb, index), clip, runs, "default settings", out)
        results["e2e_s.default"] = timed["median_s"]
    previous = default.with_(**LITE0_PREVIOUS)
    if previous.models.embedder == default.models.embedder and previous.search == default.search:
        results["e2e_s.lite0_previous"] = results["e2e_s.default"]
    else:  # the same runtime and precision, its own index of the same catalogue
        m = previous.models
        lite0 = Engine(previous, detector, get_embedder(m.embedder, device=m.device, head=m.head, runtime=m.runtime,
                                                        precision=m.precision))
        lite0.build_index(catalogue, work / "index-lite0")
        timed = _end_to_end(lite0, clip, runs, "previous default (Lite0, 10 exhaustive windows)", out)
        results["e2e_s.lite0_previous"] = timed["median_s"]
        results["end_to_end_lite0_previous"] = timed
    if _runtimes(settings)[0] == "torch":
        results["e2e_s.torch_default"] = results["e2e_s.default"]
        return
    if quick:
        return
    torch_emb = get_embedder(settings.models.embedder, device=settings.models.device, runtime="torch")
    eng = Engine(default.with_(runtime="torch"), detector, torch_emb, index)
    results["e2e_s.torch_default"] = _end_to_end(eng, clip, runs, "default settings, torch runtime", out)["median_s"]
    out(f"end to end, default settings: {results['e2e_s.default']:.2f} s ({_runtimes(settings)[0]}), "
        f"{results['e2e_s.torch_default']:.2f} s (torch)")


def _bench_matching(settings: Settings, catalogue, clip: str, detector, emb, work: Path, runs: int, results: dict,
                    out: Callable[[str], None], quick: bool = False) -> None:
    """End-to-end latency of each search mode (warm, by stage), then batch throughput of two of them; ``quick``:
    the hybrid (default), exhaustive and pooled modes and the previous default only."""
    engine = Engine(settings, detector, emb)
    engine.build_index(catalogue, work / "index")
    if quick:
        for mode, windows in (("hybrid", "hybrid"), ("exhaustive", "exhaustive"), ("pooled", "pooled")):
            eng = Engine(settings.with_(frames=10, windows=windows), detector, emb, engine.index)
            results[f"end_to_end_{mode}"] = _end_to_end(eng, clip, runs, mode, out)
        _bench_runtimes_end_to_end(settings, catalogue, clip, detector, emb, engine.index, work, runs, results, out,
                                   quick=True)
        return
    out("training a garment head on the generated catalogue (for the learned-region modes) ...")
    _, garment = train_garment_head(engine, catalogue, work / "garment-head.pt", GarmentConfig())
    modes = (("hybrid", {"windows": "hybrid"}), ("exhaustive", {"windows": "exhaustive"}),
             ("refined", {"windows": "refined", "refine_top": 3}), ("pooled", {"windows": "pooled"}),
             ("learned regions", {"garment_model": garment["checkpoint"], "windows": "exhaustive"}),
             ("learned regions, pooled", {"garment_model": garment["checkpoint"], "windows": "pooled"}))
    for mode, overrides in modes:
        eng = Engine(settings.with_(frames=10, **overrides), detector, emb, engine.index)
        results[f"end_to_end_{mode.replace(' ', '_').replace(',', '')}"] = _end_to_end(eng, clip, runs, mode, out)
    _bench_runtimes_end_to_end(settings, catalogue, clip, detector, emb, engine.index, work, runs, results, out)
    batch = [clip] * 8
    for mode, overrides in (("default", modes[0][1]), modes[-1]):  # the default (hybrid), learned regions pooled
        eng = Engine(settings.with_(frames=10, **overrides), detector, emb, engine.index)
        t0 = time.perf_counter()
        n = sum(1 for _ in eng.match(ClipPaths(tuple(batch))))
        rate = n / (time.perf_counter() - t0)
        results[f"batch_clips_per_s_{mode.replace(' ', '_').replace(',', '')}"] = rate
        out(f"batch matching ({mode}), {n} clips of 10 frames, decode overlapped: {rate:6.2f} clips/s")


def run_timeline(settings: Settings, hours: float, out: Callable[[str], None] = print,
                 workdir: Path | None = None) -> dict:
    """Only the long-video timeline benchmark (``bench --only timeline``): result key ``timeline``."""
    work = Path(workdir or tempfile.mkdtemp(prefix="livematch-bench-"))
    results: dict = {"machine": machine()}
    out(f"machine: {describe_machine(results['machine'])}")
    results["timeline"] = long_video_bench(settings, hours, work, out)
    return results


def run(settings: Settings, runs: int = 5, out: Callable[[str], None] = print, workdir: Path | None = None,
        quick: bool = False, timeline_hours: float = 0.0) -> dict:
    """Run every benchmark on a generated clip and catalogue, print each result, and return them all. ``quick``
    (for a slow or busy machine): the figures the end-to-end and embedding targets name, and nothing else (no
    batch-size sweep, ONNX Runtime, other precisions, detection indexing, learned-region modes, torch end to end,
    batch throughput, serving memory or start-up). ``timeline_hours`` > 0 adds the long-video timeline bench."""
    work = Path(workdir or tempfile.mkdtemp(prefix="livematch-bench-"))
    results: dict = {"machine": machine(), "quick": quick,
                     "settings": {"windows": settings.search.windows.value, "embedder": settings.models.embedder}}
    out(f"machine: {describe_machine(results['machine'])}")
    out("generating a 20 s 540x960 clip and a 12-product catalogue ...")
    demo = generate_demo(work / "demo", n_products=12, n_clips=1, frames_per_clip=400, frame_size=(540, 960), seed=7)
    clip = str(next((demo / "video").glob("*.mp4")))
    catalogue = load_catalogue(demo)

    detector = _bench_detection(settings, clip, results, out)
    emb = _bench_embedding(settings, results, out, quick)
    results["gpu"] = str(getattr(emb, "device", "cpu")).startswith("cuda")
    results["machine"]["stages"] = stages = {
        "decode": "OpenCV VideoCapture", "detect": f"{detector.name}: {getattr(detector, 'runtime', 'OpenCV DNN')}",
        "embed": f"{emb.name}: {getattr(emb, 'runtime', 'torch')} {getattr(emb, 'precision', 'f32')}"}
    results["settings"]["precision"] = getattr(emb, "precision", "f32")
    out("stages: " + "; ".join(f"{k} {v}" for k, v in stages.items()))
    _bench_indexing(settings, catalogue, detector, emb, work, results, out, quick)
    _bench_matching(settings, catalogue, clip, detector, emb, work, runs, results, out, quick)
    results["peak_rss_mb_bench"] = peak_memory_mb()
    out(f"peak memory (RSS) of this bench process (every model, the batch-128 embedding run): "
        f"{results['peak_rss_mb_bench']:.0f} MB")
    if not quick:
        measure_serving_rss(settings, demo, work / "index", clip, results, out)
        measure_startup(settings.home, work, results, out)
    if timeline_hours > 0:
        results["timeline"] = long_video_bench(settings, timeline_hours, work, out)
    results["load_average_at_end"] = load_average()
    out(f"load average at the end: {results['load_average_at_end']} ({results['machine']['cores']} cores)")
    check_targets(results, out)
    return results
