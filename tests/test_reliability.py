"""Faults lose nothing and crash nothing: odd clips, killed rebuilds, concurrent users."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.io.catalogue import load_catalogue
from engine.errors import VideoError
from engine.index.protocol import IndexSpec
from engine.index.store import ProductIndex, current_build, write_index
from engine.pipeline.catalogue import catalogue_regions
from engine.types import RegionRef
from engine.pipeline.engine import Engine
from engine.io.video import MAX_DECODE_SIDE, probe, sample_frames

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, n: int, size: tuple[int, int], fps: float = 10.0) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[:, : size[0] // 2] = 255
    for i in range(n):
        w.write(frame)
    w.release()
    return path


def test_zero_frame_clip_is_a_clear_error(tmp_path):
    with pytest.raises(VideoError):
        sample_frames(_write(tmp_path / "zero.mp4", 0, (64, 32)), 5)


@pytest.mark.slow
def test_8k_clip_is_downscaled_on_decode(tmp_path):
    frames = sample_frames(_write(tmp_path / "8k.mp4", 2, (7680, 4320), fps=1), 2)
    assert frames and max(frames[0].image.shape[:2]) == MAX_DECODE_SIDE


def test_two_hour_clip_is_sampled_by_seeking_across_its_length(tmp_path):
    path = _write(tmp_path / "long.mp4", 7200, (32, 32), fps=1.0)  # two hours at 1 fps
    assert probe(path).duration_s == pytest.approx(7200, rel=0.01)
    frames = sample_frames(path, 10)
    assert len(frames) == 10 and frames[0].index < 720 and frames[-1].index > 6400


def test_phone_rotation_metadata_is_applied(tmp_path):
    path = _write(tmp_path / "flat.mp4", 3, (64, 32))
    data = bytearray(path.read_bytes())
    matrix_at = data.find(b"tkhd") + 4 + 40  # version-0 track header: the display matrix
    data[matrix_at : matrix_at + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    rotated = tmp_path / "rotated.mp4"
    rotated.write_bytes(bytes(data))
    assert sample_frames(rotated, 1)[0].image.shape[:2] == (64, 32)  # portrait, as the phone showed it


def test_boxes_outside_the_image_do_not_break_indexing(engine, demo_dir, tmp_path):
    import json
    import shutil

    root = tmp_path / "cat"
    shutil.copytree(demo_dir / "image" / "900001", root / "image" / "900001")
    ann = root / "image_annotation" / "900001"
    ann.mkdir(parents=True)
    (ann / "0.json").write_text(json.dumps({"annotations": [{"box": [-50, -50, 5000, 5000], "instance_id": 1,
                                                              "label": "短裙"}]}))
    vectors, items, problems = catalogue_regions(engine, load_catalogue(root))
    assert len(items) == 3 and not problems and np.isfinite(vectors).all()


def _tiny_index(n: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    items = [RegionRef(f"p{i % 7}", "x.jpg", (0, 0, 1, 1), "", source="annotation") for i in range(n)]
    return v, items, {f"p{i}": {"name": f"P{i}", "images": []} for i in range(7)}


def test_killing_a_rebuild_midway_leaves_the_previous_index_serving(tmp_path):
    v, items, products = _tiny_index(50)
    first = write_index(tmp_path, IndexSpec(v, items, products, "m"))
    script = textwrap.dedent(f"""
        import numpy as np
        from engine.index.protocol import IndexSpec
        from engine.index.store import write_index
        from engine.types import RegionRef
        rng = np.random.default_rng(1)
        v = rng.standard_normal((60000, 64)).astype(np.float32)
        items = [RegionRef("p0", "x.jpg", (0, 0, 1, 1), "", source="annotation")] * len(v)
        print("building", flush=True)
        write_index({str(tmp_path)!r}, IndexSpec(v, items, {{"p0": {{}}}}, "m", n_trees=400))
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "building"
    deadline = time.time() + 60
    while not list((tmp_path / "builds").glob(".building-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the rebuild finished before it could be killed"
    assert current_build(tmp_path) == first
    assert len(ProductIndex.load(tmp_path, "m")) == 50
    # the next build cleans the debris of the killed one and publishes normally
    second = write_index(tmp_path, IndexSpec(v[:20], items[:20], products, "m"))
    assert current_build(tmp_path) == second
    assert not list((tmp_path / "builds").glob(".building-*"))


@pytest.mark.slow
def test_eight_concurrent_matches_share_one_engine_and_agree_with_single_runs(engine, demo_dir):
    fast = Engine(engine.settings.with_(frames=2, windows="refined", refine_top=1), engine.detector, engine.embedder,
                  engine.index)
    clips = [str(p) for p in sorted((demo_dir / "video").glob("*.mp4"))]
    jobs = [clips[i % len(clips)] for i in range(8)]
    single = {c: fast.match(c) for c in clips}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(fast.match, jobs))
    for clip, r in zip(jobs, results):
        s = single[clip]
        assert [p.product_id for p in r.ranking] == [p.product_id for p in s.ranking]
        assert [f.voted_product for f in r.frames] == [f.voted_product for f in s.frames]
        assert r.ranking[0].best_similarity == pytest.approx(s.ranking[0].best_similarity, abs=1e-4)
