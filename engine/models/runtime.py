"""Inference runtimes for region embedders: PyTorch (training, GPU) or ONNX Runtime (CPU inference).

An embedder with an ONNX export (``register_export``: the EfficientNet-Lite GeM family) has its backbone exported
on first use, from the packaged weights, to ``<LIVEMATCH_HOME>/onnx/<name>-<key>.onnx``. The key digests the weights
file's content, the embedder's ``key`` (preprocessing), the torch version (read without importing torch) and the
export format, so a change to any of them exports again; a cached file that ONNX Runtime cannot load, or that is not
the expected model, is exported again too. The ONNX embedder subclasses the torch one: same config (``name``, ``dim``,
``key``: indexes and embedding caches are shared), same preprocessing; the backbone's forward pass runs in ONNX
Runtime (graph optimisation level ALL, one intra-op thread per CPU) or OpenVINO, and GeM, band pooling and
normalisation in numpy (engine.models.pooling, the torch operations to float32 rounding): with its export cached, it
never imports torch, only exporting does.

ONNX Runtime gives the torch vectors, faster on the CPU; dynamic int8 quantisation (onnxruntime.quantization) was
slower than fp32 and moved the vectors, so it is not offered: static int8 (NNCF, calibrated) runs on OpenVINO instead
(``--precision int8``, engine.models.quantize). Figures and their commands: docs/performance-cpu.md.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from engine.config import cache_home, cpu_threads as configured_cpu_threads
from engine.errors import ModelError
from engine.io.files import atomic_write, file_digest
from engine.models import openvino_rt as ovrt
from engine.models.embedders import EfficientNetLiteGeM, preprocess, region_rows, resolve_device
from engine.models.ensemble import is_ensemble, members_of
from engine.models.pooling import NumpyPooled, torch_version
from engine.models.quantize import ensure_int8
from engine.models.registry import EmbedderConfig, embedder_entry, register_export, registered_embedders
from engine.models.weights import efficientnet_lite_file

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
EXPORTED = ("onnxruntime", "openvino")  # runtimes that run the exported ONNX backbone
EXPORT_FORMAT = "torchscript-opset17/v1"  # bump to re-export every cached model
OPSET = 17
INPUT, OUTPUT = "input", "fmap"
META_KEY = "livematch_key"
MAX_PIXELS = 16 * 288 * 224  # input pixels per ORT run (16 crops of 288x224)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is the same as a missing one
        return False
    return True


def cpu_threads() -> int:
    if configured_cpu_threads() is not None:  # a Ray worker holds fewer cores than the machine
        return configured_cpu_threads()
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_runtime(name: str, device: str = "auto", runtime: str = "auto") -> str:
    """The runtime ("torch", "onnxruntime" or "openvino") of an embedder on a device. "auto" picks, on the CPU
    and for an embedder with an ONNX export, the fastest installed: OpenVINO, then ONNX Runtime, then torch.
    An explicit runtime that cannot be honoured is a ModelError."""
    runtime = (runtime or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    entry = None if is_ensemble(name) else embedder_entry(name)
    runs_on = entry.all_runtimes if entry is not None else ("torch",)  # an unknown name: refused when built
    if runtime == "torch" and "torch" in runs_on:
        return "torch"
    if is_ensemble(name):  # every member resolved on its own; an ensemble runs where all its members can
        found = {resolve_runtime(m, device, runtime) for m, _ in members_of(name)}
        return found.pop() if len(found) == 1 else "torch"
    exportable = "onnxruntime" in runs_on
    # asked only when needed: importing ONNX Runtime to learn it is there costs about 20 MB of memory
    installed = {"openvino": ovrt.openvino_available, "onnxruntime": onnxruntime_available}
    if "torch" not in runs_on:  # a TFLite file (engine.models.tflite): OpenVINO on the CPU, or nothing
        if runtime not in ("auto", "openvino") or not installed["openvino"]() or resolve_device(device) != "cpu":
            raise ModelError(f"the embedder {name} runs only on OpenVINO on the CPU: pip install -r "
                             "requirements.txt, and use --runtime auto or openvino with --device cpu")
        return "openvino"
    if runtime == "auto":
        if not exportable or resolve_device(device) != "cpu":
            return "torch"
        return next((r for r in ("openvino", "onnxruntime") if installed[r]()), "torch")
    if not exportable:
        raise ModelError(f"the embedder {name} has no ONNX export (those with one: {', '.join(exportable_names())}): "
                         "use --runtime torch")
    if not installed[runtime]():
        raise ModelError(f"{runtime} is not installed: pip install -r requirements.txt, or use --runtime torch")
    if device == "cuda":
        raise ModelError(f"the {runtime} runtime runs on the CPU: use --device cpu, or --runtime torch on a GPU")
    return runtime


def exportable_names() -> list[str]:
    """The registered embedders with an ONNX export."""
    return [n for n in registered_embedders() if (e := embedder_entry(n)) is not None and e.exported is not None]


def exported_config(name: str) -> EmbedderConfig:
    """The config of an embedder with an ONNX export; a ModelError for any other name."""
    entry = embedder_entry(name)
    if entry is None or entry.exported is None:
        raise ModelError(f"the embedder {name} has no ONNX export: use --runtime torch")
    return entry.config


def export_key(config: EmbedderConfig, weights: Path) -> str:
    """Digest of the weights file's content, the embedder's key, the torch version and the export format (the
    version read without importing torch: ``pooling.torch_version``)."""
    parts = [file_digest(weights), config.key, torch_version(), EXPORT_FORMAT]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def onnx_path(name: str) -> tuple[Path, str]:
    """(cached ONNX file, its key) of an exportable embedder."""
    config = exported_config(name)
    key = export_key(config, efficientnet_lite_file(config.variant))
    return cache_home() / "onnx" / f"{config.name}-{key}.onnx", key


def export_onnx(config: EmbedderConfig, path: Path, key: str) -> Path:
    """Export the torch embedder's backbone (input (N, 3, H, W) -> last-stage feature map (N, C, h, w)),
    with dynamic batch, height and width, to ``path`` (atomically), its key in the model's metadata."""
    import onnx
    import torch

    model = EfficientNetLiteGeM(config, device="cpu")._model.float().eval()
    x = torch.zeros((1, 3, *config.input_hw), dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "n", 2: "h", 3: "w"}, OUTPUT: {0: "n", 2: "fh", 3: "fw"}})
    proto = onnx.load_model_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {META_KEY: key, "embedder_key": config.key})
    with atomic_write(path, binary=True) as f:
        f.write(proto.SerializeToString())
    return path


def _session(path: Path, shape: tuple[int, ...] | None = None):  # -> onnxruntime.InferenceSession
    """A CPU session, optimisation level ALL, one intra-op thread per CPU; with ``shape``, the dynamic axes
    fixed to it (ORT then plans memory and picks kernels for that shape)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = cpu_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if shape is not None:
        for axis, size in zip(("n", "h", "w"), (shape[0], shape[2], shape[3])):
            so.add_free_dimension_override_by_name(axis, int(size))
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OrtBackbone:
    """An exported backbone in ONNX Runtime. One session takes any shape; a shape that keeps coming back (used
    ``promote_after`` times: the embedding batches of clips) gets a session of its own with the shape fixed,
    15-35% faster on a 2-core CPU. At most ``max_static`` are kept (each holds its own memory): the most used
    shapes, a newcomer replacing the least used one only once it has been used twice as often (no thrashing)."""

    def __init__(self, path: Path, key: str, channels: int, max_static: int = 2, promote_after: int = 3) -> None:
        self.path = Path(path)
        self.max_static, self.promote_after = max_static, promote_after
        self._dynamic = _session(self.path)
        meta = self._dynamic.get_modelmeta().custom_metadata_map
        inputs, outputs = self._dynamic.get_inputs(), self._dynamic.get_outputs()
        if (meta.get(META_KEY) != key or [i.name for i in inputs] != [INPUT] or len(outputs) != 1
                or outputs[0].shape[1] != channels):
            raise ModelError(f"{self.path.name} is not the expected ONNX model")
        self._static: dict[tuple[int, ...], object] = {}
        self.region_batch = 0  # the one-pass-per-region batches: any size
        self.precision, self.quantised = "f32", ""
        self._seen: Counter[tuple[int, ...]] = Counter()
        self._lock = threading.Lock()

    def _pick(self, shape: tuple[int, ...]):  # -> onnxruntime.InferenceSession
        with self._lock:
            self._seen[shape] += 1
            used = self._seen[shape]
            if shape in self._static:
                return self._static[shape]
            if self.max_static <= 0 or used < self.promote_after:
                return self._dynamic
            if len(self._static) >= self.max_static:
                coldest = min(self._static, key=self._seen.__getitem__)
                if used < 2 * self._seen[coldest]:
                    return self._dynamic
                del self._static[coldest]
            self._static[shape] = _session(self.path, shape)
            return self._static[shape]

    def run(self, x: np.ndarray, bucket: int = 0) -> np.ndarray:
        """(N, C, h, w) float32 feature maps of a preprocessed (N, 3, H, W) float32 batch, run in chunks of at
        most MAX_PIXELS input pixels: larger batches are no faster, and ORT keeps the memory of its largest run.
        ``bucket`` is not used: the dynamic session takes a batch of any size (``region_batch`` is 0)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = max(1, MAX_PIXELS // max(1, x.shape[2] * x.shape[3]))
        outs = [self._pick(tuple(c.shape)).run([OUTPUT], {INPUT: c})[0]
                for c in (x[i: i + step] for i in range(0, len(x), step))]
        return outs[0] if len(outs) == 1 else np.concatenate(outs)


def _onnx_key_ok(path: Path, key: str) -> bool:
    import onnx

    props = {p.key: p.value for p in onnx.load_model(str(path), load_external_data=False).metadata_props}
    return props.get(META_KEY) == key


def _open_backbone(path: Path, key: str, channels: int, runtime: str, precision: str):
    if runtime == "openvino":
        return ovrt.OpenVinoBackbone(path, channels, precision, cpu_threads(), key=key)  # checks the key itself
    return OrtBackbone(path, key, channels)


def ensure_onnx(name: str) -> Path:
    """The cached ONNX export of an embedder, exported first when it is missing, unreadable or not the expected
    model."""
    path, key = onnx_path(name)
    try:
        if path.is_file() and _onnx_key_ok(path, key):
            return path
    except Exception:  # noqa: BLE001 - corrupt: export it again
        pass
    return export_onnx(exported_config(name), path, key)


def load_backbone(name: str, runtime: str = "onnxruntime", precision: str = "auto", prepare=None,
                  calibration: str = ""):
    """The exported backbone of an embedder, run by ONNX Runtime or OpenVINO: the cached file, exported first
    when it is missing, unreadable or not the expected model. OpenVINO at int8 runs the NNCF-quantised model
    (engine.models.quantize; ``prepare``, the embedder's preprocessing, prepares its calibration crops;
    ``calibration``: the catalogue folder they come from, "" for the generated demo)."""
    config = exported_config(name)
    if runtime == "openvino":  # a bad precision is the caller's error, not a reason to export again
        precision = ovrt.resolve_precision(precision)
        if precision == "int8":
            path, quantised = ensure_int8(name, prepare or (lambda crops: preprocess(crops, config.input_hw)),
                                          onnx_path(name)[1], ensure_onnx, calibration)
            try:
                return ovrt.OpenVinoBackbone(path, config.dim, "int8", cpu_threads(), quantised=quantised)
            except Exception as e:  # noqa: BLE001
                raise ModelError(f"OpenVINO cannot load the int8 {name} ({type(e).__name__}: {e})") from e
    path, key = onnx_path(name)
    if path.is_file():
        try:
            return _open_backbone(path, key, config.dim, runtime, precision)
        except Exception:  # noqa: BLE001 - corrupt or foreign file: export it again
            pass
    export_onnx(config, path, key)
    try:
        return _open_backbone(path, key, config.dim, runtime, precision)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{runtime} cannot load the exported {name} ({type(e).__name__}: {e})") from e


@register_export(EfficientNetLiteGeM)
class OnnxEmbedder(NumpyPooled, EfficientNetLiteGeM):
    """An EfficientNet-Lite GeM embedder with its backbone exported to ONNX and run on the CPU by ONNX Runtime or
    OpenVINO.

    Preprocessing and batching are the torch embedder's own code; the backbone's forward pass runs in ONNX Runtime
    or OpenVINO, and GeM, band pooling and normalisation in numpy (engine.models.pooling): with its export cached,
    it never imports torch."""

    def __init__(self, config: EmbedderConfig, device: str = "cpu", runtime: str = "onnxruntime",
                 precision: str = "auto", calibration: str = "") -> None:
        if device not in ("auto", "cpu"):
            raise ModelError(f"the {runtime} runtime runs on the CPU: use --device cpu, or --runtime torch")
        if runtime not in EXPORTED:
            raise ModelError(f"{runtime} does not run exported models")
        self.configure(config)
        self.runtime = runtime
        self.device = "cpu"
        self.half = False
        self._lock = threading.Lock()
        self.backbone = load_backbone(self.name, runtime, precision, self.preprocess, calibration)
        self.precision = self.backbone.precision

    @property
    def vectors_key(self) -> str:
        """``key`` at f32; else with the precision (and an int8 model's own key: its calibration), so embedding
        caches and indexes never mix vectors of two precisions."""
        if self.precision == "f32":
            return self.key
        quantised = self.backbone.quantised
        return f"{self.key}@{self.precision}" + (f":{quantised}" if quantised else "")

    def region_batches(self, regions: list[np.ndarray], batch_size: int = 16):
        """As the torch embedder's, in batches of at most the backbone's ``region_batch`` regions when it has one."""
        rows = region_rows(self.backbone.region_batch)
        return super().region_batches(regions, min(batch_size, rows or batch_size))

    def feature_maps_preprocessed(self, batch: np.ndarray) -> np.ndarray:  # (N, C, h, w) float32
        """The backbone's feature maps; a batch shorter than its ``region_batch`` runs padded to it (OpenVINO: one
        compiled shape per region height, whichever clip comes; the padded rows are computed apart and dropped)."""
        return self.backbone.run(batch, region_rows(self.backbone.region_batch))


def build_onnx_embedder(name: str, device: str = "cpu", runtime: str = "onnxruntime",
                        precision: str = "auto", calibration: str = "") -> OnnxEmbedder:
    return OnnxEmbedder(exported_config(name), device=device, runtime=runtime, precision=precision,
                        calibration=calibration)
