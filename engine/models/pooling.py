"""Pooling of exported backbones' feature maps in numpy, and what a process can learn about torch without importing it.

The exported embedders (ONNX Runtime, OpenVINO: engine.models.runtime, engine.models.tflite) get their feature maps as
numpy arrays; ``NumpyPooled`` pools them there: GeM (p=3, clamped at 1e-6) over a map or over the cells a box covers
(``box_cells``, shared with the torch embedder), then L2 normalisation. It is the torch embedder's pooling
(engine.models.embedders.gem, ``torch.nn.functional.normalize``) in numpy: the same operations in the same order
(``x * x * x`` for p=3, as torch computes ``pow(3)``), so the vectors agree to float32 rounding (about 1e-7;
tests/test_torch_free.py). A match with a cached export then never imports torch (about 480 MB of resident memory).

``torch_version`` reads the installed torch's version (part of an export's key) from its ``version.py``, and
``torch_may_see_gpu`` says whether ``torch.cuda.is_available()`` could be True, both without ``import torch``.
"""

from __future__ import annotations

import ast
import ctypes
import functools
import importlib.util
import sys
from pathlib import Path

import numpy as np

from engine.errors import ModelError
from engine.geometry import Box

GEM_EPS = 1e-6
NORM_EPS = 1e-12  # torch.nn.functional.normalize's


def box_cells(box: Box, rows: int, cols: int) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1): the cells of a rows x cols feature map that a box (x0, y0, x1, y1 as fractions of the
    region) covers, at least one."""
    x0, y0, x1, y1 = box
    r0 = min(rows - 1, max(0, int(round(y0 * rows))))
    r1 = max(r0 + 1, min(rows, int(round(y1 * rows))))
    c0 = min(cols - 1, max(0, int(round(x0 * cols))))
    c1 = max(c0 + 1, min(cols, int(round(x1 * cols))))
    return r0, r1, c0, c1


def _powered(x: np.ndarray, p: float, eps: float = GEM_EPS) -> np.ndarray:
    """max(x, eps) ** p, float32 (p=3 as three products, as torch computes it)."""
    x = np.maximum(np.asarray(x, np.float32), np.float32(eps))
    return x * x * x if p == 3.0 else np.power(x, np.float32(p))


def _root(mean: np.ndarray, p: float) -> np.ndarray:
    return np.power(mean.astype(np.float32, copy=False), np.float32(1.0 / p))


def l2_normalised(v: np.ndarray) -> np.ndarray:
    """Rows of ``v`` divided by their L2 norm (at least NORM_EPS), float32."""
    v = np.asarray(v, np.float32)
    norm = np.sqrt(np.sum(v * v, axis=-1, keepdims=True, dtype=np.float32))
    return (v / np.maximum(norm, np.float32(NORM_EPS))).astype(np.float32, copy=False)


def gem_numpy(fmaps: np.ndarray, p: float = 3.0) -> np.ndarray:
    """Generalised-mean pooling over the spatial dimensions of (N, C, H, W): (N, C) float32."""
    return _root(_powered(fmaps, p).mean(axis=(-2, -1), dtype=np.float32), p)


def pool_boxes_numpy(fmap: np.ndarray, boxes: list[Box], p: float = 3.0) -> np.ndarray:
    """(len(boxes), C) L2-normalised GeM vectors of boxes (fractions of the region) on one (C, h, w) feature map."""
    _, rows, cols = fmap.shape
    powered = _powered(fmap, p)  # once for every box: the same numbers as per box, elementwise
    out = np.zeros((len(boxes), fmap.shape[0]), np.float32)
    for n, box in enumerate(boxes):
        r0, r1, c0, c1 = box_cells(box, rows, cols)
        out[n] = powered[:, r0:r1, c0:c1].mean(axis=(-2, -1), dtype=np.float32)
    return l2_normalised(_root(out, p)) if len(boxes) else out


class NumpyPooled:
    """The pooling of an embedder whose ``backbone.run`` gives numpy feature maps (an exported EfficientNet-Lite
    GeM): GeM (``gem_p``), band and box pooling and L2 normalisation in numpy, no torch. Listed before the torch
    embedder among the bases, it replaces its torch methods."""

    backbone: object
    gem_p: float

    def _to_device(self, batch: np.ndarray) -> np.ndarray:
        return batch

    def _feature_map(self, x: np.ndarray) -> np.ndarray:  # (N, C, h, w)
        return self.backbone.run(x)

    def _pool(self, fmap: np.ndarray) -> np.ndarray:  # (N, C, h, w) -> (N, C)
        return gem_numpy(fmap, self.gem_p)

    def _features(self, x: np.ndarray) -> np.ndarray:  # (N, C)
        return self._pool(self._feature_map(x))

    def embed_preprocessed(self, batch: np.ndarray) -> np.ndarray:
        """(N, dim) L2-normalised vectors of a batch already preprocessed."""
        return l2_normalised(self._features(batch))

    def pool_boxes(self, fmap: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """L2-normalised pooled vectors (n, dim) of boxes (fractions of the region) on one region's feature map."""
        return pool_boxes_numpy(np.asarray(fmap), boxes, self.gem_p)


@functools.cache  # read once a process: asked for every member's export key and device
def _torch_version_file() -> dict[str, object]:
    """The constants of the installed torch's ``torch/version.py`` (``__version__``, ``cuda``, ``hip``...), read
    as text; {} when torch is not installed or the file is not as expected."""
    try:
        spec = importlib.util.find_spec("torch")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        tree = ast.parse((Path(locations[0]) / "version.py").read_text()) if locations else None
    except (ImportError, OSError, ValueError, SyntaxError):
        return {}
    found: dict[str, object] = {}
    for node in tree.body if tree is not None else []:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
            node.target if isinstance(node, ast.AnnAssign) else None)
        if isinstance(target, ast.Name) and node.value is not None:
            try:
                found[target.id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def torch_version() -> str:
    """``torch.__version__`` (for example ``2.14.1+cu130``): torch's own when it is imported already, else read from
    its version.py (which torch's ``__version__`` comes from) without importing it."""
    if "torch" in sys.modules:
        import torch

        return str(torch.__version__)
    version = _torch_version_file().get("__version__")
    if isinstance(version, str) and version:
        return version
    if importlib.util.find_spec("torch") is None:
        raise ModelError("exporting a model needs torch, which is not installed: pip install -r requirements.txt")
    import torch  # not as expected: ask torch itself

    return str(torch.__version__)


def torch_may_see_gpu() -> bool:
    """Whether ``torch.cuda.is_available()`` could be True, without importing torch: False only where it cannot be
    (a torch built without CUDA or ROCm, or no CUDA driver library to load); True where torch must be asked."""
    if "torch" in sys.modules:
        return True
    if importlib.util.find_spec("torch") is None:
        return False  # no torch, no GPU for it (and nothing to ask)
    build = _torch_version_file()
    if not build or build.get("hip") or build.get("xpu"):
        return True
    if not build.get("cuda"):
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True
