"""Detectors and embedders, built by name from the registry each fills where it is defined
(engine.models.registry: ``@register_embedder``, ``@register_detector``, the named ensembles).

``create_embedder`` builds a fresh embedder; ``get_embedder`` the process-wide one of the same arguments (built on
first use; models are safe to share between threads). Every argument but the name is a keyword. The input size is
the config's (``input_size=`` overrides it: the name and key then carry it).

Imports stay at the top of the modules; only the optional heavy packages (torch, timm, torchvision, onnx,
onnxruntime, openvino, nncf) are imported inside the functions that need them, so that ``import engine.models``
loads none of them. No engine module is imported inside a function in engine.models.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.errors import ModelError
from engine.models import openvino_rt as ovrt
from engine.models.detectors import DETECTORS, Detector
from engine.models.ensemble import EnsembleEmbedder, ensemble_name, is_ensemble, members_of
from engine.models.garments import GarmentHead
from engine.models.heads import HeadEmbedder
from engine.models.pose import PoseEstimator
from engine.models.protocols import Embedder, Ensemble, Exported, Preparable, base_of, pools_bands
from engine.models.quantize import calibration_folder
from engine.models.registry import embedder_entry, registered_embedders, registered_ensembles
from engine.models.runtime import EXPORTED, cpu_threads, resolve_runtime
from engine.models.tflite import EfficientNetLite3GeM  # noqa: F401 - registers the Lite3 embedder

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Any] = {}


def build_detector(name: str, **kwargs: Any) -> Detector:
    """Build a fresh detector by registry name."""
    if name not in DETECTORS:
        raise ModelError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name](**kwargs)


def embedder_names() -> list[str]:
    """Every embedder a setting may name: the single backbones, then the named ensembles."""
    return registered_embedders() + registered_ensembles()


def create_embedder(name: str, *, input_size: tuple[int, int] | None = None, device: str = "auto",
                    runtime: str = "auto", precision: str = "auto", calibration: str = "") -> Embedder:
    """A fresh embedder by registered name, at ``input_size`` ((height, width); default: its config's), on
    ``device`` ("auto", "cpu", "cuda"), run by ``runtime`` ("auto", "torch", "onnxruntime", "openvino": see
    engine.models.runtime.resolve_runtime) at ``precision`` (OpenVINO only: "auto", "bf16", "int8" or "f32"; int8 is
    calibrated on the catalogue folder ``calibration``, or on the generated demo when it is ""). An ensemble's members
    are the process-wide ones (``get_embedder``): an ensemble and its members share their models."""
    if not isinstance(name, str) or not name:
        raise ModelError(f"an embedder name is a non-empty string, not {name!r}")
    if is_ensemble(name):
        members = members_of(name, input_size)
        name = ensemble_name(name, input_size) if input_size is not None else name
        return EnsembleEmbedder(name, [get_embedder(m, device=device, runtime=runtime, precision=precision,
                                                    calibration=calibration) for m, _ in members],
                                [w for _, w in members])
    entry = embedder_entry(name, input_size)
    if entry is None:
        raise ModelError(f"unknown embedder {name!r}; choose one of {', '.join(embedder_names())}")
    runtime = resolve_runtime(entry.config.name, device, runtime)
    build = entry.exported if runtime in EXPORTED and entry.exported is not None else entry.build
    return build(entry.config, device=device, runtime=runtime, precision=precision, calibration=calibration)


def _signature(path: str) -> tuple[int, int]:
    """(mtime, size) of a checkpoint: a rewritten file is loaded again, without hashing it on every call
    (the garment head is looked up on every match)."""
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)  # missing: the loader reports it
    return (st.st_mtime_ns, st.st_size)


def get_detector(name: str) -> Detector:
    """The process-wide detector of that name (built on first use)."""
    key = ("detector", name)
    with _lock:
        if key not in _cache:
            _cache[key] = build_detector(name)
        return _cache[key]


def get_embedder(name: str, *, device: str = "auto", head: str = "", runtime: str = "auto",
                 precision: str = "auto", calibration: str = "") -> Embedder:
    """The process-wide embedder of that name, device and runtime (built on first use by ``create_embedder``),
    followed by the projection head checkpoint ``head`` when one is given (see ``python -m engine train-embedding``).
    ``runtime``: "auto" (on the CPU the fastest installed of OpenVINO and ONNX Runtime when the embedder has an
    export, else torch), "torch", "onnxruntime" or "openvino"; ``precision``: OpenVINO's ("auto", "bf16", "int8",
    "f32"); ``calibration``: the catalogue folder int8 models are calibrated on ("": the generated demo; ignored at
    any other precision, so one f32 embedder serves every catalogue)."""
    calibration = int8_calibration(precision, calibration)
    key = ("embedder", name, device, runtime, precision, calibration)
    if is_ensemble(name):  # built outside the lock: its members take it
        with _lock:
            base = _cache.get(key)
        if base is None:
            base = create_embedder(name, device=device, runtime=runtime, precision=precision, calibration=calibration)
            with _lock:
                base = _cache.setdefault(key, base)
    else:
        runtime = resolve_runtime(name, device, runtime)
        with _lock:
            precision, calibration = (precision, calibration) if runtime == "openvino" else ("auto", "")
            key = ("embedder", name, device, runtime, precision, calibration)
            if key not in _cache:
                _cache[key] = create_embedder(name, device=device, runtime=runtime, precision=precision,
                                              calibration=calibration)
            base = _cache[key]
    if not head:
        return base
    hkey = ("head", name, device, runtime, precision, calibration, str(head), _signature(head))
    with _lock:
        if hkey not in _cache:
            _cache[hkey] = HeadEmbedder(base, head)
        return _cache[hkey]


def int8_calibration(precision: str, calibration: str) -> str:
    """The calibration folder an embedder is built and cached with: resolved at int8, "" at any other precision
    (OpenVINO is asked only where "auto" may mean int8, so a machine without it still runs torch)."""
    wanted = (precision or "auto").strip().lower()
    if not calibration or wanted not in ("int8", "auto"):
        return ""
    if wanted == "auto" and not (ovrt.INT8_HOLDS_ACCURACY and ovrt.openvino_available()
                                 and ovrt.resolve_precision("auto") == "int8"):
        return ""
    return calibration_folder(calibration)


def prepare_embedder(embedder: Embedder, batch: int) -> None:
    """Compile an embedder's OpenVINO models now, rather than at the first match, side by side: for batches of
    ``batch`` crops at its input size (an ensemble's one vectors model, else each backbone), and each backbone for
    the region batches of the hybrid and pooled windows at the usual heights of a person's box
    (``openvino_rt.PREPARED_REGION_HEIGHTS``). Nothing for other runtimes."""
    base = base_of(embedder)  # a projection head runs on its base embedder
    members = base.members if isinstance(base, Ensemble) else [base]
    fused = base.vectors_graph if isinstance(base, Ensemble) else None  # an OpenVINO ensemble: one vectors model
    backbones = [m.backbone for m in members if isinstance(m, Exported) and isinstance(m.backbone, Preparable)]
    if not backbones or batch < 1:
        return
    h, w = base.input_hw
    embed_shape = (int(batch), 3, h, w)
    jobs = [[(fused, embed_shape)]] if fused is not None else [[(b, embed_shape)] for b in backbones]
    if pools_bands(base):
        jobs += [[(b, (b.region_batch, 3, height, w)) for height in ovrt.PREPARED_REGION_HEIGHTS] for b in backbones]
    with ThreadPoolExecutor(len(jobs)) as pool:  # OpenVINO compiles without the GIL
        list(pool.map(lambda todo: [graph.prepare(shape) for graph, shape in todo], jobs))


def get_pose_estimator() -> PoseEstimator:
    """The process-wide body keypoint model (MoveNet Lightning, built on first use)."""
    with _lock:
        if ("pose",) not in _cache:
            _cache[("pose",)] = PoseEstimator(cpu_threads())
        return _cache[("pose",)]


def get_garment_head(path: str) -> GarmentHead:
    """The process-wide garment head of that checkpoint (loaded on first use, reloaded when it changes)."""
    key = ("garment", str(path), _signature(path))
    with _lock:
        if key not in _cache:
            _cache[key] = GarmentHead.load(path)
        return _cache[key]


__all__ = ["DETECTORS", "Detector", "Embedder", "build_detector", "create_embedder", "embedder_names",
           "get_detector", "get_embedder", "get_garment_head", "get_pose_estimator", "prepare_embedder"]
