"""Shared fixtures. Every test runs offline on data generated here; nothing touches the user's cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Isolate the engine's caches (embeddings, indexes, demo) from the user's before anything imports it. Once per process:
# a test module that imports this file as ``tests.conftest`` runs it a second time, which must not move the home.
_HOME = Path(os.environ.get("LIVEMATCH_TESTS_HOME") or tempfile.mkdtemp(prefix="livematch-tests-"))
os.environ["LIVEMATCH_TESTS_HOME"] = os.environ["LIVEMATCH_HOME"] = str(_HOME)
os.environ.pop("LIVEMATCH_CATALOGUE", None)
os.environ.pop("LIVEMATCH_DEMO_DIR", None)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "watchlive-sample"

# A small demo: 5 products, 3 clips of 40 frames, at a quarter of livestream resolution.
SMALL_DEMO = {"n_products": 5, "n_clips": 3, "frames_per_clip": 40, "frame_size": (270, 480), "seed": 3}
FAST_FRAMES = 4


@pytest.fixture(scope="module")
def chromium() -> str:
    """Headless chromium for the browser tests (skipped without it, failed where CI requires it)."""
    from support.browser import require_chromium

    return require_chromium()


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    from engine.io.demo import generate_demo

    return generate_demo(_HOME / "small-demo", **SMALL_DEMO)


@pytest.fixture(scope="session")
def settings():
    from engine.config import Settings

    return Settings.from_env(frames=FAST_FRAMES)


@pytest.fixture(scope="session")
def engine(demo_dir: Path, settings):
    """A real engine (offline pretrained SSD and EfficientNet-Lite0) with the small demo indexed."""
    from engine.workspace import ready_engine
    from engine.io.catalogue import load_catalogue

    return ready_engine(settings, load_catalogue(demo_dir))


@pytest.fixture()
def clip_path(tmp_path: Path):
    """Write a short synthetic clip with cv2.VideoWriter; returns a factory."""
    import cv2
    import numpy as np

    def make(n_frames: int = 12, size: tuple[int, int] = (64, 96), fps: float = 10.0, name: str = "clip.mp4") -> Path:
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        for i in range(n_frames):
            frame = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
            writer.write(frame)
        writer.release()
        return path

    return make


def pytest_collection_modifyitems(config, items):
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason="../shared/data is not here (fresh clone)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    # torchvision 0.29 warns that TorchCodec will replace its JPEG codec (used by the JPEG augmentation).
    config.addinivalue_line(
        "filterwarnings", "ignore:The image decoding and encoding capabilities of TorchVision:DeprecationWarning")


@pytest.fixture()
def serve():
    """``serve(folder)`` -> the base URL of a local HTTP server over ``folder``, with byte ranges (as real servers
    have: FFmpeg reads an mp4 whose index sits at its end by seeking); ``serve(folder, ranges=False)``: a plain
    ``python -m http.server`` that ignores them; stopped after the test."""
    import contextlib

    from support.browser import serve_folder

    with contextlib.ExitStack() as stack:
        yield lambda folder, ranges=True: stack.enter_context(serve_folder(folder, ranges))
