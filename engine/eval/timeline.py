"""Measuring timelines: videos joined from clips whose products are known, the share of time a timeline labels
right, its boundary errors, and a long generated video's speed and memory (``python -m engine timeline-eval``,
``python -m engine bench --only timeline``; the figures are in docs/timeline.md)."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import VideoError
from engine.pipeline.timeline import NO_PRODUCT, Timeline, TimelineParams, TimelineRun


@dataclass(frozen=True)
class Part:
    """A stretch of a joined video and the product it shows (NO_PRODUCT: none)."""

    start_s: float
    end_s: float
    product_id: str


def join_clips(clips: list[tuple[str | Path, str]], out: str | Path, size: tuple[int, int] = (540, 960),
               fps: float = 20.0, repeat: int = 1) -> tuple[Part, ...]:
    """Write the clips one after another (``repeat`` times over) into one video at a common ``size`` (width,
    height) and ``fps``; each clip keeps its own duration (its frames are held or dropped to the new rate).
    ``clips``: (path, product shown). Returns the true parts."""
    import cv2

    codec = "MJPG" if Path(out).suffix.lower() == ".avi" else "mp4v"  # an .avi is motion JPEG
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise VideoError(f"OpenCV cannot write mp4 video to {out}")
    parts, t = [], 0.0
    cache: dict[str, list] = {}  # with repeats: each clip's output frames, decoded once
    try:
        for _ in range(max(1, repeat)):
            for path, product in clips:
                frames = cache.get(str(path)) or _output_frames(path, size, fps)
                if repeat > 1:
                    cache[str(path)] = frames
                for f in frames:
                    writer.write(f)
                parts.append(Part(round(t, 3), round(t + len(frames) / fps, 3), product))
                t += len(frames) / fps
    finally:
        writer.release()
    return tuple(parts)


def _output_frames(path: str | Path, size: tuple[int, int], fps: float) -> list:
    """A clip's frames at the output size and rate (BGR), its duration kept."""
    import cv2

    from engine.io.video import open_capture

    cap = open_capture(path)
    src_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or fps
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr)
    cap.release()
    if not frames:
        raise VideoError(f"{Path(path).name}: no frame could be read")
    n_out = int(round(len(frames) / src_fps * fps))
    picked = [frames[min(len(frames) - 1, int(j / fps * src_fps))] for j in range(n_out)]
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in picked]


@dataclass(frozen=True)
class TimelineScore:
    """How a timeline agrees with the truth: the share of time labelled with the right product (NO_PRODUCT
    included), each true boundary's distance to the nearest boundary found, and whether the products found come
    in the true order (consecutive repeats merged, "no product" left out)."""

    accuracy: float
    boundary_errors: tuple[float, ...]
    order: tuple[str, ...]
    truth_order: tuple[str, ...]

    @property
    def in_order(self) -> bool:
        return self.order == self.truth_order

    @property
    def max_boundary_error(self) -> float:
        return max(self.boundary_errors) if self.boundary_errors else 0.0


def _merged(ids: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for p in ids:
        if p != NO_PRODUCT and (not out or out[-1] != p):
            out.append(p)
    return tuple(out)


def score_timeline(timeline: Timeline, truth: tuple[Part, ...], step_s: float = 0.05) -> TimelineScore:
    end = truth[-1].end_s if truth else 0.0
    ts = np.arange(0.0, end, step_s) + step_s / 2

    def label(t: float, parts) -> str | None:
        for p in parts:
            if p.start_s <= t < p.end_s:
                return p.product_id
        return None

    found = [Part(s.start_s, s.end_s, s.product_id) for s in timeline.segments]
    accuracy = float(np.mean([label(t, found) == label(t, truth) for t in ts])) if len(ts) else 0.0
    found_cuts = [s.start_s for s in timeline.segments[1:]]
    true_cuts = [p.start_s for p, q in zip(truth[1:], truth[:-1]) if p.product_id != q.product_id]
    errors = tuple(round(min(abs(c - f) for f in found_cuts), 3) if found_cuts else round(end, 3) for c in true_cuts)
    return TimelineScore(round(accuracy, 4), errors, _merged([s.product_id for s in timeline.segments]),
                         _merged([p.product_id for p in truth]))


def run_timeline(engine, video: str | Path, params: TimelineParams = TimelineParams(),
                 on_step: Callable[[TimelineRun], None] | None = None) -> Timeline:
    run = TimelineRun(engine, video, params)
    try:
        while not run.ended:
            run.step()
            if on_step is not None:
                on_step(run)
    finally:
        run.close()
    return run.timeline()


def decode_speed(video: str | Path, every_s: float = 2.0, seconds: float = 0.0) -> dict[str, float]:
    """Seconds to read the frames sampled every ``every_s`` s (the first ``seconds`` of video; 0: all of it), by
    seeking and by reading sequentially with drops (engine.io.sampler), and how many frames each read."""
    from engine.io.sampler import open_sampler

    out: dict[str, float] = {}
    for mode in ("seek", "sequential"):
        reader, _ = open_sampler(video, every_s, mode)
        n, t0 = 0, time.perf_counter()
        try:
            while not reader.ended:
                frames = reader.next_frames(8)
                n += len(frames)
                if seconds and frames and frames[-1].time_s >= seconds:
                    break
        finally:
            reader.close()
        out[f"{mode}_s"], out[f"{mode}_frames"] = round(time.perf_counter() - t0, 3), n
    return out


def current_rss_mb() -> float:
    """This process's resident memory now (Linux; 0.0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def long_video_bench(settings, hours: float, work: Path, out: Callable[[str], None] = print,
                     every_s: float | None = None) -> dict:
    """A ``hours``-long video made of the demo clips over and over (270x480 at 2 fps, so the file stays small),
    its timeline built with the demo catalogue: video-seconds per wall-second, peak RSS, and the RSS at each
    tenth of the way (flat memory: frames are not kept)."""
    from engine.io.catalogue import load_catalogue
    from engine.io.demo import generate_demo
    from engine.workspace import ready_engine

    demo = generate_demo(work / "timeline-demo", n_products=6, n_clips=6, frames_per_clip=200,
                         frame_size=(270, 480), seed=11)
    catalogue = load_catalogue(demo)
    clips = [(c.path, vid) for vid, c in sorted(catalogue.clips.items()) if c.path]
    one_pass = sum(200 / 20 for _ in clips)
    repeat = max(1, int(round(hours * 3600 / one_pass)))
    video = work / "timeline-long.mp4"
    t0 = time.perf_counter()
    truth = join_clips(clips, video, size=(270, 480), fps=2.0, repeat=repeat)
    out(f"timeline: wrote a {truth[-1].end_s / 3600:.2f} h video ({len(truth)} clips of 10 s, 270x480, 2 fps, "
        f"{video.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    decode = decode_speed(video, every_s or settings.detection.stream_every, seconds=600.0)
    out(f"timeline: decoding the first 10 minutes' sampled frames: seek {decode['seek_s']:.2f} s, sequential with "
        f"drops {decode['sequential_s']:.2f} s ({decode['seek_frames']:.0f} frames)")
    engine = ready_engine(settings.with_(catalogue=str(demo), index_dir=str(work / "timeline-index")), catalogue)
    params = replace(TimelineParams(), every_s=every_s or settings.detection.stream_every, coarse_s=0)  # as before
    rss: list[float] = []
    marks = {"next": 0.0}

    def on_step(run: TimelineRun) -> None:
        now = round(current_rss_mb(), 1)
        while run.fraction >= marks["next"] - 1e-9:  # at the first step past each tenth
            rss.append(now)
            marks["next"] += 0.1

    start_rss = current_rss_mb()
    t0 = time.perf_counter()
    timeline = run_timeline(engine, video, params, on_step)
    wall = time.perf_counter() - t0
    score = score_timeline(timeline, truth)
    result = {
        "hours": round(timeline.end_s / 3600, 3), "every_s": timeline.every_s, "frames": len(timeline.frames),
        "wall_s": round(wall, 1), "video_s_per_wall_s": round(timeline.end_s / wall, 2),
        "frames_per_s": round(len(timeline.frames) / wall, 2),
        "rss_mb_start": round(start_rss, 1), "rss_mb_by_tenth": rss,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "segments": len(timeline.segments), "true_parts": len(truth), "accuracy": score.accuracy,
        "max_boundary_error_s": score.max_boundary_error, "decode_first_10_min": decode,
    }
    out(f"timeline of {result['hours']} h at one frame every {result['every_s']:g} s: {result['frames']} frames in "
        f"{result['wall_s']:.0f} s = {result['video_s_per_wall_s']:.1f} video-s per wall-s "
        f"({result['frames_per_s']:.2f} frames/s); RSS {start_rss:.0f} MB at the start, by tenths "
        f"{', '.join(f'{v:.0f}' for v in rss)} MB; peak RSS {result['peak_rss_mb']:.0f} MB")
    out(f"timeline: {result['segments']} segments for {result['true_parts']} clips; accuracy {score.accuracy:.3f}, "
        f"largest boundary error {score.max_boundary_error:.1f} s")
    return result
