"""The OpenVINO runtime for an exported embedder backbone on the CPU.

It reads the cached ONNX file of ONNX Runtime (engine.models.runtime) and compiles it once per input shape (faster
than a dynamic shape), keeping ``MAX_SHAPES``. A batch up to ``PAD_ROWS`` crops smaller than a compiled one runs
padded with zeros in it: rows are computed independently, so its vectors are the same (tests/test_openvino_cache.py).

Compiled models are kept on disk (``compiled_cache_dir()``, ``<LIVEMATCH_HOME>/openvino-compiled``) through
OpenVINO's own export_model/import_model, so a fresh process imports them instead of compiling (the first match of
a fresh app). A blob's name digests everything it depends on (the model file's name, which carries its export key,
size and mtime; the shape; the compile configuration with the precision; the OpenVINO version; the CPU's
capabilities and ``ONEDNN_MAX_CPU_ISA``), and a sidecar holds its SHA-256: OpenVINO imports a blob whose weights
were damaged without a word (and computes wrong vectors), so a blob whose digest does not match, or that fails to
import, is deleted and compiled afresh. At most ``MAX_BLOBS`` blobs are kept per model file, precision and CPU,
the most recently used.

Precision ("auto", "bf16", "int8" or "f32"; ``LIVEMATCH_PRECISION``): "bf16" (OpenVINO's own default on a CPU that
offers BF16), "f32" (``INFERENCE_PRECISION_HINT`` f32: no operation runs in bf16, which ``execution_precisions``
shows), or "int8" (the NNCF-quantised model of engine.models.quantize, its other operations in f32). "auto" is f32 on
every CPU: neither bf16 nor int8 (without VNNI) holds region top-1 within 0.01 of f32 (``BF16_HOLDS_ACCURACY``,
``INT8_HOLDS_ACCURACY``; the figures and their commands: docs/performance-cpu.md). Models kept as IR (the converted
detector, int8 backbones): engine.models.openvino_ir.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np

from engine.config import cache_home
from engine.errors import ModelError
from engine.io.files import atomic_write

PRECISIONS = ("auto", "bf16", "int8", "f32")
# Compiled shapes kept in memory per graph, the least recently used dropped beyond (imported again from the disk cache
# when needed): each holds its own weights and buffers, so memory grows a step per shape (docs/timeline.md).
MAX_SHAPES = 3
PAD_ROWS = 8  # a batch runs padded in a compiled shape at most this many rows larger (cheaper than a compile)
# A batch of a size not compiled yet (and not within PAD_ROWS of a compiled one) runs padded to the next of these
# rows (a power of two): the batch sizes a process compiles stay few, whatever the number of regions per call.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CACHE_COMPILED = True  # keep compiled models on disk (compiled_cache_dir), imported by the next process
BLOB_FORMAT = "export_model/v1"  # bump to compile every cached blob again
# A backbone's one-pass-per-region batches (regions grouped by height) hold at most this many regions, a shorter one
# padded to it: one compiled shape per height, whatever the clip (docs/performance-cpu.md).
REGION_BATCH = 4
# Region heights the app compiles before its first match (engine.models.prepare_embedder): those of a person's box at
# most about 2.4 times as tall as wide (TorchEmbedder.region_batches). Other heights compile when a clip needs them.
PREPARED_REGION_HEIGHTS = (288, 384)
MAX_BLOBS = 8  # compiled shapes kept on disk per model file, precision and CPU, the most recent
# Whether "auto" takes int8 (on a CPU without bf16) or bf16: only where it holds dev region top-1 within 0.01 of f32
# (each precision keyed apart by Embedder.vectors_key; the figures: docs/performance-cpu.md). Both stay opt-in.
INT8_HOLDS_ACCURACY = False
BF16_HOLDS_ACCURACY = False


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is the same as a missing one
        return False
    return True


def nncf_available() -> bool:
    """Whether NNCF (int8 quantisation, engine.models.quantize) can be imported."""
    try:
        import nncf  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is the same as a missing one
        return False
    return True


_caps: tuple[str, ...] | None = None
# ONEDNN_MAX_CPU_ISA values that leave no bf16 instructions to the CPU plugin (which still lists BF16 then, and
# fails to compile at bf16): an AVX-512 or AMX machine capped to what an older CPU has.
NO_BF16_ISA = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's CPU OPTIMIZATION_CAPABILITIES (for example ``BF16, FP32, INT8``), read once per process;
    without BF16 when ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below the bf16 instructions."""
    global _caps
    if _caps is None:
        import openvino as ov

        caps = tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        if os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in NO_BF16_ISA:
            caps = tuple(c for c in caps if c != "BF16")
        _caps = caps
    return _caps


def resolve_precision(precision: str, capabilities: tuple[str, ...] | None = None) -> str:
    """"bf16", "int8" or "f32". "auto": bf16 where the CPU plugin offers BF16 and bf16 holds accuracy
    (``BF16_HOLDS_ACCURACY``); else int8 where it offers INT8, int8 holds accuracy (``INT8_HOLDS_ACCURACY``) and NNCF
    is installed (int8 models are quantised on first use); else f32. ``capabilities``: the CPU plugin's (default:
    this CPU's)."""
    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    caps = cpu_capabilities() if capabilities is None else capabilities
    if "BF16" in caps and BF16_HOLDS_ACCURACY:
        return "bf16"
    if "INT8" in caps and INT8_HOLDS_ACCURACY and nncf_available():
        return "int8"
    return "f32"


def compiled_cache_dir() -> Path:
    """Where compiled models are kept between processes: ``<LIVEMATCH_HOME>/openvino-compiled``."""
    return cache_home() / "openvino-compiled"


_core, _core_lock = None, threading.Lock()


def shared_core():  # -> openvino.Core
    """The process's one OpenVINO Core (its CPU plugin is loaded once)."""
    global _core
    with _core_lock:
        if _core is None:
            import openvino as ov

            _core = ov.Core()
        return _core


ONNX_KEY_INFO = ["framework", "livematch_key"]  # where OpenVINO shows the ONNX export's metadata key


def onnx_key_of(model) -> str:  # model: openvino.Model
    """The key an ONNX export carries in its metadata (engine.models.runtime.META_KEY), as OpenVINO reads it;
    "" when it has none. Read this way, checking an export needs no ``import onnx`` (0.6 s)."""
    try:
        return str(model.get_rt_info(ONNX_KEY_INFO).astype(str)) if model.has_rt_info(ONNX_KEY_INFO) else ""
    except Exception:  # noqa: BLE001 - no such entry
        return ""


def bucket_rows(n: int) -> int:
    """The rows a batch of ``n`` runs in when no compiled shape fits it: the next of BATCH_BUCKETS (``n`` itself past
    the largest)."""
    return next((b for b in BATCH_BUCKETS if b >= n), n)


class OpenVinoGraph:
    """An OpenVINO model (one batched input (N, ...) -> ``outputs`` outputs, each (N, ...)) compiled for the CPU once
    per input shape at a precision: the compiled shapes kept in memory (``MAX_SHAPES``) and on disk
    (``compiled_cache_dir``), a short batch run padded in a compiled shape. ``stem`` names its blobs; ``identity``
    (strings) is everything the model is made of, digested into the blobs' names. ``run`` is the embedders' call
    (a float32 (N, 3, H, W) batch -> the one float32 output); ``infer`` any input type and every output (the
    OpenVINO detector's uint8 images -> boxes, classes, scores, counts)."""

    def __init__(self, model, stem: str, identity: list[str], precision: str = "auto", threads: int = 2,
                 outputs: int = 1) -> None:
        self.stem = stem
        self.outputs = int(outputs)
        self.threads = int(threads)
        self.precision = resolve_precision(precision)
        self._core = shared_core()
        # int8: the quantised model's int8 layers run in int8, the rest in f32
        self._config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads),
                        "INFERENCE_PRECISION_HINT": "f32" if self.precision == "int8" else self.precision}
        self._model = model
        self._identity = list(identity)
        self._compiled: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_events: list[str] = []  # per compiled shape: "imported", "compiled" (and why, when a blob failed)

    @property
    def model(self):  # -> openvino.Model, as read or built (not reshaped)
        return self._model

    # ------------------------------------------------------------------ compiled models, on disk
    def _digests(self) -> tuple[str, str]:
        """(environment, model) digests of a blob's name: the OpenVINO build, compile configuration and CPU; the
        model's identity (a model file's name, size and mtime)."""
        import openvino as ov

        env = [BLOB_FORMAT, ov.get_version(), json.dumps(self._config, sort_keys=True), ",".join(cpu_capabilities()),
               os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()]
        env_digest, model_digest = (hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
                                    for parts in (env, self._identity))
        return env_digest, model_digest

    def blob_path(self, shape: tuple[int, ...]) -> Path:
        """Where the compiled model of a shape is kept: its name digests all it depends on (``_digests``)."""
        env, model = self._digests()
        dims = "x".join(map(str, shape))
        return compiled_cache_dir() / f"{self.stem}-{dims}-{self.precision}-{env}-{model}.blob"

    def _prune(self, blob: Path) -> None:
        """Delete the stale blobs of this shape (another model file, same name, precision and CPU), and all but the
        ``MAX_BLOBS`` most recently used of this model file (the hybrid windows' pooled pass meets a new shape
        with many clips: the folder stays bounded)."""
        env, model = self._digests()
        stale = blob.name.rsplit("-", 1)[0] + "-"
        mine = sorted(blob.parent.glob(f"{self.stem}-*-{self.precision}-{env}-{model}.blob"),
                      key=lambda p: p.stat().st_mtime_ns, reverse=True)
        drop = [p for p in blob.parent.glob(f"{stale}*.blob") if p.name != blob.name] + mine[MAX_BLOBS:]
        for old in drop:
            for p in (old, old.with_suffix(".sha256")):
                with contextlib.suppress(OSError):
                    p.unlink(missing_ok=True)

    def _import(self, blob: Path):  # -> openvino.CompiledModel | None
        """The compiled model kept in ``blob`` when its digest matches its sidecar and OpenVINO imports it; else
        None (a damaged or half-written blob is deleted)."""
        sidecar = blob.with_suffix(".sha256")
        if not (blob.is_file() and sidecar.is_file()):
            return None
        try:
            data = blob.read_bytes()
            if hashlib.sha256(data).hexdigest() != sidecar.read_text().strip():
                raise ValueError("digest mismatch")
            compiled = self._core.import_model(data, "CPU", self._config)
            if len(compiled.outputs) != self.outputs:
                raise ValueError(f"not {self.outputs} outputs")
            self.cache_events.append("imported")
            with contextlib.suppress(OSError):
                os.utime(blob)  # recently used: kept by _prune
            return compiled
        except Exception as e:  # noqa: BLE001 - any failure: compile afresh
            self.cache_events.append(f"discarded ({type(e).__name__})")
            for p in (blob, sidecar):
                with contextlib.suppress(OSError):  # a read-only cache: compiled afresh each time, still no error
                    p.unlink(missing_ok=True)
            return None

    def _keep(self, blob: Path, compiled) -> None:
        """Write the compiled model and its digest (atomically each; the blob first). Best effort: a full disk or
        a read-only home only costs the next process a compile."""
        try:
            data = compiled.export_model()
            data = data.getvalue() if hasattr(data, "getvalue") else bytes(data)
            with atomic_write(blob, binary=True) as f:
                f.write(data)
            with atomic_write(blob.with_suffix(".sha256")) as f:
                f.write(hashlib.sha256(data).hexdigest())
            self._prune(blob)
        except Exception:  # noqa: BLE001
            pass

    def _compile(self, shape: tuple[int, ...]):  # -> openvino.CompiledModel
        blob = self.blob_path(shape) if CACHE_COMPILED else None
        compiled = self._import(blob) if blob is not None else None
        if compiled is None:
            model = self._model.clone()
            model.reshape(list(shape))
            compiled = self._core.compile_model(model, "CPU", self._config)
            self.cache_events.append("compiled")
            if blob is not None:
                self._keep(blob, compiled)
        return compiled

    # ------------------------------------------------------------------ shapes
    def _request(self, shape: tuple[int, ...]):  # -> openvino.InferRequest
        with self._lock:
            if shape in self._compiled:
                self._compiled.move_to_end(shape)
                return self._compiled[shape]
        request = self._compile(shape).create_infer_request()  # outside the lock: members compile in parallel
        with self._lock:
            self._compiled[shape] = request
            self._compiled.move_to_end(shape)
            while len(self._compiled) > MAX_SHAPES:
                self._compiled.popitem(last=False)
            return request

    def release(self, keep: Callable[[tuple[int, ...]], bool] = lambda shape: False) -> None:
        """Drop the compiled shapes for which ``keep(shape)`` is False (their memory; the disk cache keeps them)."""
        with self._lock:
            for shape in [s for s in self._compiled if not keep(s)]:
                del self._compiled[shape]

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Compile (or import) the model for a shape now, rather than at its first run."""
        self._request(tuple(int(v) for v in shape))

    def _padded_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape a batch runs in: its own when compiled; else the smallest compiled one of the same image size
        at most PAD_ROWS rows larger; else its rows rounded up to the next of BATCH_BUCKETS (compiled then)."""
        with self._lock:
            if shape in self._compiled:
                return shape
            larger = [s for s in self._compiled if s[1:] == shape[1:] and shape[0] < s[0] <= shape[0] + PAD_ROWS]
        return min(larger) if larger else (bucket_rows(shape[0]), *shape[1:])

    def execution_precisions(self, shape: tuple[int, ...]) -> dict[str, int]:
        """How many of the compiled model's operations run at each precision (``runtimePrecision``) for a shape:
        what the CPU plugin really does with the precision hint."""
        compiled = self._request(tuple(shape)).get_compiled_model()
        info = (op.get_rt_info() for op in compiled.get_runtime_model().get_ops())
        return dict(Counter(str(i["runtimePrecision"].astype(str)) for i in info if "runtimePrecision" in i))

    def infer(self, x: np.ndarray, bucket: int = 0) -> list[np.ndarray]:
        """Every output of the model (copies, the batch's rows only) for a batch ``x`` of the input's type: a batch
        short of a compiled shape runs padded with zero rows (the rows of a batch are computed independently).
        ``bucket``: a batch of fewer rows runs padded to that many (one compiled shape per image size, whatever
        the batch)."""
        x = np.ascontiguousarray(x)
        n = len(x)
        shape = (bucket, *x.shape[1:]) if 0 < n < bucket else self._padded_shape(tuple(x.shape))
        if shape[0] > n:
            x = np.concatenate([x, np.zeros((shape[0] - n, *x.shape[1:]), x.dtype)])
        request = self._request(shape)
        with self._lock:  # one call at a time: each uses every core already
            out = request.infer({0: x})
            return [np.array(out[i][:n], copy=True) for i in range(self.outputs)]

    def run(self, x: np.ndarray, bucket: int = 0) -> np.ndarray:
        """The model's float32 output for a preprocessed (N, 3, H, W) float32 batch (a backbone's (N, C, h, w)
        feature maps; an ensemble's (N, dim) vectors); ``bucket`` as in ``infer``."""
        return self.infer(np.ascontiguousarray(x, dtype=np.float32), bucket)[0].astype(np.float32, copy=False)


class OpenVinoBackbone(OpenVinoGraph):
    """An exported backbone (input (N, 3, H, W) -> feature map (N, C, h, w)) compiled by OpenVINO for the CPU:
    the ONNX export at bf16 or f32, or its int8 IR (engine.models.quantize) at int8. ``key``: when given, the
    ONNX export's metadata key (``onnx_key_of``) must be it; ``quantised``: an int8 IR's weights' SHA-256 (what its
    calibration made), part of the embedder's ``vectors_key``."""

    region_batch = REGION_BATCH  # its one-pass-per-region batches: at most this many regions, a shorter one padded

    def __init__(self, path: Path, channels: int, precision: str = "auto", threads: int = 2, key: str = "",
                 quantised: str = "") -> None:
        self.path = Path(path)
        self.quantised = quantised
        core = shared_core()
        try:
            model = core.read_model(str(self.path))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
            raise ModelError(f"OpenVINO cannot read {self.path.name} ({type(e).__name__})") from e
        out = model.outputs
        if (len(out) != 1 or out[0].get_partial_shape()[1].get_length() != channels
                or (key and onnx_key_of(model) != key)):
            raise ModelError(f"{self.path.name} is not the expected ONNX model")
        files = [self.path] + ([self.path.with_suffix(".bin")] if self.path.suffix == ".xml" else [])  # IR: + weights
        super().__init__(model, self.path.stem, [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files],
                         precision, threads)
