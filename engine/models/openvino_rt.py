"""The OpenVINO runtime for an exported embedder backbone on the CPU.

It reads the same cached ONNX file as ONNX Runtime (engine.models.runtime exports it from the packaged
weights) and compiles it for the CPU once per input shape (about 0.1 s; a compiled shape is 20-25% faster
than OpenVINO's dynamic-shape model). The few shapes a process sees (the embedding batch and its remainders,
the catalogue's) are kept, the least recently used dropped beyond ``MAX_SHAPES``.

Precision: "bf16" (OpenVINO's own default on a CPU that offers BF16, as the 2-core development CPU does) or
"f32". Measured there (``python -m engine bench``; ``python -m engine evaluate --dataset watchlive-dev``):
bf16 embeds 2-2.5x faster than ONNX Runtime and about 5x faster than PyTorch; its vectors are within cosine
0.997 of fp32 and the development set's clip top-1 and region top-1 are the same; f32 gives the torch vectors
(cosine 1.0) at about 1.1x ONNX Runtime.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from engine.errors import ModelError

PRECISIONS = ("auto", "bf16", "f32")
MAX_SHAPES = 6


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is the same as a missing one
        return False
    return True


def resolve_precision(precision: str) -> str:
    """"bf16" or "f32": "auto" is bf16 where the CPU plugin offers it, else f32."""
    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "bf16" if "BF16" in caps else "f32"


class OpenVinoBackbone:
    """An exported backbone (input (N, 3, H, W) -> feature map (N, C, h, w)) compiled by OpenVINO for the CPU."""

    def __init__(self, path: Path, channels: int, precision: str = "auto", threads: int = 2) -> None:
        import openvino as ov

        self.path = Path(path)
        self.precision = resolve_precision(precision)
        self._core = ov.Core()
        self._config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads),
                        "INFERENCE_PRECISION_HINT": self.precision}
        try:
            self._model = self._core.read_model(str(self.path))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
            raise ModelError(f"OpenVINO cannot read {self.path.name} ({type(e).__name__})") from e
        out = self._model.outputs
        if len(out) != 1 or out[0].get_partial_shape()[1].get_length() != channels:
            raise ModelError(f"{self.path.name} is not the expected ONNX model")
        self._compiled: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._lock = threading.Lock()

    def _request(self, shape: tuple[int, ...]):  # -> openvino.InferRequest
        with self._lock:
            if shape in self._compiled:
                self._compiled.move_to_end(shape)
                return self._compiled[shape]
            model = self._model.clone()
            model.reshape(list(shape))
            request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
            self._compiled[shape] = request
            while len(self._compiled) > MAX_SHAPES:
                self._compiled.popitem(last=False)
            return request

    def run(self, x: np.ndarray) -> np.ndarray:
        """(N, C, h, w) float32 feature maps of a preprocessed (N, 3, H, W) float32 batch."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        request = self._request(tuple(x.shape))
        with self._lock:  # one call at a time: each uses every core already
            return np.array(request.infer({0: x})[0], dtype=np.float32, copy=True)
