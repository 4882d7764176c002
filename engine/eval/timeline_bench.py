"""The timeline benchmark (``python -m engine bench --timeline``): a generated livestream-like video, its timeline
built coarse to fine (this release) and with a frame every 2 s (the previous release), in the same process:
processing seconds per hour of video, peak memory, boundary errors and accuracy, and how soon a live run knows of a
product change.

The video: the demo's clips made long (``part_frames`` frames each, written at ``fps``: 120 frames at 2 fps make a
60-second part in which the camera and the light drift slowly) joined in ``ORDER``, so the product changes every
part, ten parts (ten minutes, nine changes) by default, at 240x320. Generation is deterministic (seeded) and takes
seconds. The catalogue is the demo's (8 products). See docs/timeline.md for measured figures.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import engine as engine_package
from engine.eval.timeline import Part, current_rss_mb, run_timeline, score_timeline
from engine.pipeline.timeline import LIVE_COARSE_S, TimelineParams, TimelineRun

ORDER = (0, 1, 2, 3, 4, 5, 6, 7, 2, 5)  # the clips shown, one part each: the product changes at every part
SIZE = (270, 480)  # (width, height): small portrait frames, a quarter of 540x960


def join_frames(clips: list[tuple[str | Path, str]], out: Path, fps: float = 2.0) -> tuple[Part, ...]:
    """Write every frame of each clip (path, product shown), in order, into one video at ``fps`` (a clip of n frames
    becomes n / fps seconds: the demo's 120-frame clips, 60-second parts at 2 fps); the clips share one frame
    size. Returns the true parts."""
    import cv2

    from engine.errors import VideoError
    from engine.io.video import open_capture

    writer, truth, t = None, [], 0.0
    try:
        for path, product in clips:
            cap = open_capture(path)
            n = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if writer is None:
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, bgr.shape[1::-1])
                    if not writer.isOpened():
                        raise VideoError(f"OpenCV cannot write mp4 video to {out}")
                writer.write(bgr)
                n += 1
            cap.release()
            truth.append(Part(round(t, 3), round(t + n / fps, 3), product))
            t += n / fps
    finally:
        if writer is not None:
            writer.release()
    return tuple(truth)


def bench_video(work: Path, parts: int = 10, part_frames: int = 120, fps: float = 2.0):  # -> (demo, video, truth)
    """Generate the demo catalogue and the joined video (``parts`` parts of ``part_frames`` frames at ``fps``)."""
    from engine.io.demo import generate_demo

    demo = generate_demo(work / "timeline-bench-demo", n_products=8, n_clips=8, frames_per_clip=part_frames,
                         frame_size=SIZE, seed=11)
    clips = sorted((demo / "video").glob("*.mp4"))
    video = work / f"timeline-bench-{parts}x{part_frames}.mp4"
    chosen = [clips[ORDER[k % len(ORDER)] % len(clips)] for k in range(parts)]
    return demo, video, join_frames([(c, c.stem) for c in chosen], video, fps)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(engine, video: Path, params: TimelineParams, truth: tuple[Part, ...]) -> dict:
    t0, c0 = time.perf_counter(), _cpu_s()
    run = TimelineRun(engine, video, params)
    try:
        while not run.ended:
            run.step()
    finally:
        run.close()
    timeline = run.timeline()
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    score = score_timeline(timeline, truth)
    hours = timeline.end_s / 3600
    sampler = run.sampler
    return {"s_per_video_hour": round(wall / hours, 1), "cpu_s_per_video_hour": round(cpu / hours, 1),
            "wall_s": round(wall, 1), "frames": len(timeline.frames), "segments": len(timeline.segments),
            "accuracy": score.accuracy, "boundary_error_s": score.max_boundary_error,
            "boundary_errors_s": list(score.boundary_errors), "in_order": score.in_order,
            "sampler": {"grid_frames_read": sampler.grid_frames, "matched": sampler.matched,
                        "detections_reused": sampler.reused, "cuts_located": sampler.located,
                        "coarse_samples_skipped": sampler.skipped} if sampler is not None else {}}


def live_latency(engine, video: Path, truth: tuple[Part, ...], seconds: float,
                 params: TimelineParams) -> list[float]:
    """How long after each product change (in the first ``seconds`` of the video) a live run prints the segment
    it closes, as if the video arrived in real time: a step can start once its frames have been streamed and
    the step before has finished; each step's own processing time is measured."""
    run = TimelineRun(engine, video, params)
    done, shown, printed = 0.0, 0, []  # when the last step finished (stream time), segments printed so far
    try:
        while not run.ended and run.covered_s < seconds:
            t0 = time.perf_counter()
            run.step()
            closed = run.timeline().segments[:-1]
            arrived = run.sampler.read_until_s if run.sampler is not None else run.covered_s
            done = max(done, arrived) + time.perf_counter() - t0
            printed += [(s.end_s, done) for s in closed[shown:]]
            shown = max(shown, len(closed))
    finally:
        run.close()
    changes = [p.start_s for p, q in zip(truth[1:], truth[:-1]) if p.product_id != q.product_id and p.start_s < seconds]
    out = []
    for c in changes:  # the first segment printed that ends within 2 s of the change
        at = [when for end, when in printed if abs(end - c) <= 2.0]
        out.append(round(min(at) - c, 1) if at else float("inf"))
    return out


def timeline_bench(settings, work: Path, out: Callable[[str], None] = print, parts: int = 10,
                   part_frames: int = 120, live_s: float = 180.0) -> dict:
    """The ``timeline`` figures of ``bench --timeline`` (see the module's docstring)."""
    from engine.io.catalogue import load_catalogue
    from engine.workspace import ready_engine

    t0 = time.perf_counter()
    demo, video, truth = bench_video(work, parts, part_frames)
    out(f"timeline: wrote a {truth[-1].end_s / 60:.1f}-minute video ({len(truth)} parts, "
        f"{sum(p.product_id != q.product_id for p, q in zip(truth[1:], truth[:-1]))} product changes, "
        f"{SIZE[0]}x{SIZE[1]}) and its catalogue in {time.perf_counter() - t0:.1f} s")
    engine = ready_engine(settings.with_(catalogue=str(demo), index_dir=str(work / "timeline-bench-index")),
                          load_catalogue(demo))
    every = settings.detection.stream_every
    # the previous way first, after a warm-up of its own; then its compiled shapes let go, the peak counted afresh
    # (``reset_peak_rss``) and the coarse-to-fine way warmed up and measured: each way's peak is its own
    run_timeline(engine, video, TimelineParams(every_s=every, coarse_s=0), on_step=_stop_after(4))  # warm
    rss = {"models_loaded": round(current_rss_mb())}
    old = _timed(engine, video, TimelineParams(every_s=every, coarse_s=0), truth)
    rss["after_previous"] = round(current_rss_mb())
    previous_peak = _peak_rss_mb()
    peak_scope = "coarse-to-fine run" if reset_peak_rss() else "whole process (the peak could not be reset)"
    coarse = TimelineParams(every_s=every, release_shapes=True)  # as the command line runs it
    run_timeline(engine, video, coarse, on_step=_stop_after(1))  # warm: lets go of the previous way's shapes
    rss["before_coarse_to_fine"] = round(current_rss_mb())
    new = _timed(engine, video, coarse, truth)
    rss["after_coarse_to_fine"] = round(current_rss_mb())
    peak = _peak_rss_mb()
    # what a person running the command sees: each way in a fresh `timeline` process, with the bench's settings
    alone = fresh_process_peak_rss_mb(video, demo, settings, work, coarse=True, out=out)
    previous_alone = fresh_process_peak_rss_mb(video, demo, settings, work, coarse=False, out=out)
    live_params = TimelineParams(every_s=every, coarse_s=LIVE_COARSE_S, batch=1)
    latency = live_latency(engine, video, truth, min(live_s, truth[-1].end_s), live_params) if live_s > 0 else []
    result = {
        "video_minutes": round(truth[-1].end_s / 60, 2), "parts": len(truth), "size": list(SIZE),
        "s_per_video_hour": new["s_per_video_hour"], "previous_s_per_video_hour": old["s_per_video_hour"],
        "ratio": round(new["s_per_video_hour"] / old["s_per_video_hour"], 3),
        "cpu_s_per_video_hour": new["cpu_s_per_video_hour"],
        "previous_cpu_s_per_video_hour": old["cpu_s_per_video_hour"],
        "peak_rss_mb": alone, "previous_peak_rss_mb": previous_alone,
        "peak_rss_in_bench_mb": peak, "peak_rss_in_bench_scope": peak_scope,
        "previous_peak_rss_in_bench_mb": previous_peak, "previous_peak_rss_in_bench_scope": "the bench up to the "
        "previous way's end (demo, index, warm-up included)", "rss_mb": rss,
        "boundary_error_s": new["boundary_error_s"], "previous_boundary_error_s": old["boundary_error_s"],
        "accuracy": new["accuracy"], "previous_accuracy": old["accuracy"],
        "frames": new["frames"], "previous_frames": old["frames"], "segments": new["segments"],
        "previous_segments": old["segments"], "in_order": new["in_order"], "previous_in_order": old["in_order"],
        "boundary_errors_s": new["boundary_errors_s"], "previous_boundary_errors_s": old["boundary_errors_s"],
        "live_latency_s": latency, "sampler": new["sampler"],
        "params": {"every_s": every, "coarse_s": coarse.coarse_s, "fine_s": coarse.fine_s,  # the run's own
                   "region_height": coarse.region_height, "region_rows": coarse.region_rows,
                   "locate_cuts": coarse.locate_cuts, "coarse_skip": coarse.coarse_skip},
    }
    out(f"timeline, coarse to fine: {result['s_per_video_hour']:.0f} s per video hour ({result['frames']} frames), "
        f"accuracy {result['accuracy']:.3f}, largest boundary error {result['boundary_error_s']:.1f} s")
    out(f"timeline, a frame every {every:g} s (previous): {result['previous_s_per_video_hour']:.0f} s per video hour "
        f"({result['previous_frames']} frames), accuracy {result['previous_accuracy']:.3f}, largest boundary error "
        f"{result['previous_boundary_error_s']:.1f} s; ratio {result['ratio']:.2f}; "
        f"peak RSS of a fresh `timeline` process {_mb(alone)}, with --coarse 0 {_mb(previous_alone)} (in this "
        f"process {peak:.0f} MB over the {peak_scope})")
    if latency:
        shown = ", ".join(f"{v:.1f}" for v in latency)
        out(f"timeline, live (coarse {LIVE_COARSE_S:g} s): a closed segment printed {shown} s "
            f"after each product change (real-time arrival simulated)")
    return result


def fresh_process_peak_rss_mb(video: Path, catalogue: Path, settings, work: Path, coarse: bool = True,
                              out: Callable[[str], None] = print, timeout_s: float = 1800.0) -> float | None:
    """The peak resident memory of ``python -m engine timeline VIDEO`` (coarse to fine, or ``--coarse 0`` the previous
    way) in a process of its own, with the bench's catalogue, index and settings (as ``LIVEMATCH_*`` variables): what a
    person running the command sees, without the shapes and heap the bench's other runs left in this process. The child
    reports its own peak (VmHWM: a child's ``ru_maxrss`` counts the memory of the process it was forked from). None
    where it cannot be measured (not Linux, or the run failed: its last error line is printed)."""
    root = str(Path(engine_package.__file__).resolve().parents[1])  # the child imports the same engine package
    chosen = {f"LIVEMATCH_{k.upper()}": str(v) for k, v in settings.with_(
        catalogue=str(catalogue), index_dir=str(work / "timeline-bench-index")).flat().items() if v not in ("", None)}
    env = {**os.environ, **chosen,
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))}
    code = ("import sys\nfrom engine.cli import main\nrc = main(sys.argv[1:])\n"
            "print('VmHWM', *[v.split()[1] for v in open('/proc/self/status') if v.startswith('VmHWM')])\n"
            "sys.exit(rc)")
    command = [sys.executable, "-c", code, "timeline", str(video), "--json",
               str(work / f"timeline-alone-{'coarse' if coarse else 'every'}.json")]
    if not coarse:
        command += ["--coarse", "0"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        out(f"timeline: the fresh-process memory run could not finish ({type(e).__name__}); peak not measured")
        return None
    peak = [line.split() for line in done.stdout.splitlines() if line.startswith("VmHWM")]
    if done.returncode != 0 or not peak or len(peak[-1]) != 2:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        out(f"timeline: the fresh-process memory run failed ({last}); peak not measured")
        return None
    return round(int(peak[-1][1]) / 1024, 1)


def _mb(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.0f} MB"


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def reset_peak_rss() -> bool:
    """Count this process's peak resident memory afresh from now (Linux: /proc/self/clear_refs, "5"); False where
    that is not possible (the peak then stays the whole process's)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _stop_after(steps: int) -> Callable[[TimelineRun], None]:
    seen = {"n": 0}

    def on_step(run: TimelineRun) -> None:
        seen["n"] += 1
        if seen["n"] >= steps:
            run.stop()

    return on_step
