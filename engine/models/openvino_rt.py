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

PRECISIONS = ("auto", "bf16", "int8", "f32")
MAX_SHAPES = 6
# Whether "auto" takes int8 on a CPU without bf16: only where int8 holds accuracy (dev region top-1 within 0.01 of
# f32; docs/performance-cpu.md has the measurement).
INT8_HOLDS_ACCURACY = False


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is the same as a missing one
        return False
    return True


_caps: tuple[str, ...] | None = None


def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's CPU OPTIMIZATION_CAPABILITIES (for example ``BF16, FP32, INT8``), read once per process."""
    global _caps
    if _caps is None:
        import openvino as ov

        _caps = tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return _caps


def resolve_precision(precision: str, capabilities: tuple[str, ...] | None = None) -> str:
    """"bf16", "int8" or "f32". "auto": bf16 where the CPU plugin offers BF16; else int8 where it offers INT8,
    int8 holds accuracy (``INT8_HOLDS_ACCURACY``) and NNCF is installed (int8 models are quantised on first use);
    else f32. ``capabilities``: the CPU plugin's (default: this CPU's)."""
    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    caps = cpu_capabilities() if capabilities is None else capabilities
    if "BF16" in caps:
        return "bf16"
    if "INT8" in caps and INT8_HOLDS_ACCURACY:
        from engine.models.quantize import nncf_available

        if nncf_available():
            return "int8"
    return "f32"


class OpenVinoBackbone:
    """An exported backbone (input (N, 3, H, W) -> feature map (N, C, h, w)) compiled by OpenVINO for the CPU:
    the ONNX export at bf16 or f32, or its int8 IR (engine.models.quantize) at int8."""

    def __init__(self, path: Path, channels: int, precision: str = "auto", threads: int = 2) -> None:
        import openvino as ov

        self.path = Path(path)
        self.precision = resolve_precision(precision)
        self._core = ov.Core()
        # int8: the quantised model's int8 layers run in int8 and the rest in f32, as on a CPU without bf16
        self._config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads),
                        "INFERENCE_PRECISION_HINT": "f32" if self.precision == "int8" else self.precision}
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

    def execution_precisions(self, shape: tuple[int, ...]) -> dict[str, int]:
        """How many of the compiled model's operations run at each precision (``runtimePrecision``) for a shape:
        what the CPU plugin really does with the precision hint."""
        from collections import Counter

        compiled = self._request(tuple(shape)).get_compiled_model()
        info = (op.get_rt_info() for op in compiled.get_runtime_model().get_ops())
        return dict(Counter(str(i["runtimePrecision"].astype(str)) for i in info if "runtimePrecision" in i))

    def run(self, x: np.ndarray) -> np.ndarray:
        """(N, C, h, w) float32 feature maps of a preprocessed (N, 3, H, W) float32 batch."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        request = self._request(tuple(x.shape))
        with self._lock:  # one call at a time: each uses every core already
            return np.array(request.infer({0: x})[0], dtype=np.float32, copy=True)
