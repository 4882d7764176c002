"""Frames from the stream's own clock and of a bounded size (issue 30): a variable-frame-rate file is sampled in
order, evenly in time, each frame with its true presentation time; a clip whose frames are over the pixel cap is
refused in one line before a frame is decoded, with the process's peak memory far below a 16000² frame's cost."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import VideoError
from engine.io.sampler import open_sampler
from engine.io.video import MAX_FRAME_PIXELS, probe, sample_frames, sample_indices

ROOT = Path(__file__).resolve().parents[1]
DURATIONS_MS = [40] * 100 + [80] * 50 + [20] * 100  # 250 frames, three frame durations, 10 s in all
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _pattern(k: int) -> np.ndarray:
    """Frame k draws its number in binary: eight white squares or not."""
    img = np.zeros((64, 96, 3), np.uint8)
    for b in range(8):
        if k >> b & 1:
            x, y = (b % 4) * 24, (b // 4) * 32
            img[y + 4:y + 28, x + 4:x + 20] = 255
    return img


def _number(rgb: np.ndarray) -> int:
    g = rgb.mean(axis=2)
    return sum(1 << b for b in range(8) if g[(b // 4) * 32 + 8:(b // 4) * 32 + 24, (b % 4) * 24 + 6:(b % 4) * 24 + 18]
               .mean() > 128)


def write_vfr(path: Path, durations_ms: list[int] = DURATIONS_MS) -> list[float]:
    """An MP4 with variable frame durations, without PyAV or an ffmpeg binary (neither is installed): OpenCV writes
    it at a constant rate, then its time-to-sample table (``stts``, in the ``moov`` box at the file's end) is
    rewritten with the durations, the sizes of the boxes around it grown to match (the total duration is kept, so
    the edit list still holds). Returns each frame's presentation time in seconds."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 64))
    for k in range(len(durations_ms)):
        writer.write(_pattern(k))
    writer.release()
    data = bytearray(path.read_bytes())
    found: dict = {}

    def walk(start: int, end: int, chain: list[int]) -> None:
        i = start
        while i < end:
            size, kind = struct.unpack(">I4s", data[i:i + 8])
            if kind in _CONTAINERS:
                walk(i + 8, i + size, chain + [i])
            elif kind == b"mdhd":
                found["timescale"] = struct.unpack(">I", data[i + 20:i + 24])[0]
            elif kind == b"stts":
                found["stts"] = (chain, i, size)
            i += size

    walk(0, len(data), [])
    chain, at, size = found["stts"]
    entries: list[list[int]] = []
    for d in durations_ms:
        delta = round(d * found["timescale"] / 1000)
        if entries and entries[-1][1] == delta:
            entries[-1][0] += 1
        else:
            entries.append([1, delta])
    table = struct.pack(">I4sII", 16 + 8 * len(entries), b"stts", 0, len(entries))
    table += b"".join(struct.pack(">II", c, d) for c, d in entries)
    data[at:at + size] = table
    for i in chain:
        data[i:i + 4] = struct.pack(">I", struct.unpack(">I", data[i:i + 4])[0] + len(table) - size)
    path.write_bytes(bytes(data))
    return [t / 1000 for t in np.concatenate([[0], np.cumsum(durations_ms)[:-1]])]


@pytest.fixture(scope="module")
def vfr(tmp_path_factory) -> tuple[Path, list[float]]:
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    return path, write_vfr(path)


def test_the_vfr_file_is_what_it_claims(vfr) -> None:
    """Read in order, every frame is the one drawn, at its presentation time: the file really is VFR."""
    import cv2

    path, times = vfr
    cap = cv2.VideoCapture(str(path))
    seen = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        seen.append((_number(bgr[:, :, ::-1]), round(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000, 3)))
    cap.release()
    assert seen == [(k, round(t, 3)) for k, t in enumerate(times)]
    assert probe(path).frame_count == 250 and probe(path).fps == pytest.approx(25.0)


def _check(frames, times: list[float]) -> None:
    for f in frames:  # the frame it says, at the time it says
        assert _number(f.image) == f.index, (f.index, _number(f.image))
        assert f.time_s == pytest.approx(times[f.index], abs=1e-3)
    assert [f.time_s for f in frames] == sorted({f.time_s for f in frames})  # in order, no repeats


def test_a_vfr_file_is_sampled_evenly_in_time_in_order_with_the_right_times(vfr) -> None:
    """Issue 30: sample_frames asked for frames 37, 62, 87 and got 102, 130, 140 (OpenCV's frame seek is off in a
    VFR file). Now each sample is the first frame at or after its even point in time."""
    path, times = vfr
    frames = sample_frames(path, 10)
    _check(frames, times)
    assert len(frames) == 10
    targets = [i / 25.0 for i in sample_indices(250, 10)]  # 0.48 s, 1.48 s, ...: a constant-rate clip's points
    for f, t in zip(frames, targets):
        assert t - 0.001 <= f.time_s <= t + 0.081  # at or after the point, within one frame (80 ms at most)


@pytest.mark.parametrize("decode", ["seek", "sequential", "auto"])
def test_the_every_2_s_readers_keep_order_and_times_in_a_vfr_file(vfr, decode) -> None:
    path, times = vfr
    reader, duration = open_sampler(path, 2.0, decode)
    frames = []
    while not reader.ended:
        frames += reader.next_frames(2)
    _check(frames, times)
    assert [f.time_s for f in frames] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [f.index for f in frames] == [0, 50, 100, 125, 150]


def test_a_constant_rate_clip_is_sampled_as_before(clip_path) -> None:
    path = clip_path(n_frames=40, fps=10.0)
    frames = sample_frames(path, 5)
    assert [f.index for f in frames] == [4, 12, 20, 28, 36]
    assert [f.time_s for f in frames] == pytest.approx([0.4, 1.2, 2.0, 2.8, 3.6])


_WRITE_BIG = """
import sys, numpy as np, cv2
w = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*"MJPG"), 5, (16000, 16000))
img = np.zeros((16000, 16000, 3), np.uint8); img[::64] = 255
w.write(img); w.release()
"""
_READ_BIG = """
import resource, sys
from engine.errors import VideoError
from engine.io.sampler import open_sampler
from engine.io.video import sample_frames
for read in (lambda p: sample_frames(p, 10), lambda p: open_sampler(p, 2.0)):
    try:
        read(sys.argv[1])
        print("READ")
    except VideoError as e:
        print("REFUSED", e)
try:  # this process's own peak: ru_maxrss also holds the parent's peak from before exec (the pytest process's)
    with open("/proc/self/status") as f:
        peak = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
except (OSError, StopIteration):  # no /proc: the rusage figure, an upper bound
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("MAXRSS_KB", peak)
"""


@pytest.mark.slow
def test_a_16000_square_mjpeg_clip_is_refused_in_one_line_under_2_gb(tmp_path: Path) -> None:
    """Issue 30: a 3 MB 16000² MJPEG AVI took `match` to 3.31 GB. Frames over MAX_FRAME_PIXELS are refused when the
    clip is opened, from the container's size, before any is decoded."""
    big = tmp_path / "big.avi"
    subprocess.run([sys.executable, "-c", _WRITE_BIG, str(big)], check=True, timeout=300)
    assert big.stat().st_size < 50 * 2**20
    out = subprocess.run([sys.executable, "-c", _READ_BIG, str(big)], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    lines = out.stdout.splitlines()
    assert [ln.split(" ")[0] for ln in lines] == ["REFUSED", "REFUSED", "MAXRSS_KB"], out.stdout + out.stderr
    assert "16000×16000 (256 Mpx), over the 64 Mpx" in lines[0]
    peak_gb = int(lines[-1].split()[1]) / 2**20
    print(f"peak RSS {peak_gb:.2f} GB")
    # one decoded 16000² frame alone is 0.72 GB (BGR); refused: 0.06 GB; the cap off: 1.87 GB (VmHWM, this machine)
    assert peak_gb < 0.5
    assert 16000 * 16000 > MAX_FRAME_PIXELS


def test_a_frame_over_the_cap_that_arrives_later_is_refused_too() -> None:
    from engine.io.video import to_rgb

    with pytest.raises(VideoError, match="over the 64 Mpx"):
        to_rgb(np.zeros((1, MAX_FRAME_PIXELS + 1, 3), np.uint8))
