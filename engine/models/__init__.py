"""A registry of detectors and embedders, keyed by name.

Each builder carries its weights, preprocessing and class names together, so they never disagree.
Models are built once per process (``get_detector`` / ``get_embedder``) and are safe to share
between threads.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from engine.models.detectors import DETECTORS, Detector
from engine.models.embedders import EMBEDDERS, Embedder

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Any] = {}


def build_detector(name: str, **kwargs: Any) -> Detector:
    """Build a fresh detector by registry name."""
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name](**kwargs)


def build_embedder(name: str, device: str = "auto", runtime: str = "torch", precision: str = "auto",
                   calibration: str = "", **kwargs: Any) -> Embedder:
    """Build a fresh embedder by registry name, run by ``runtime`` (see engine.models.runtime) at ``precision``
    (OpenVINO only: "auto", "bf16", "int8" or "f32"; int8 is calibrated on the catalogue folder ``calibration``, or
    on the generated demo when it is "")."""
    from engine.models.ensemble import EnsembleEmbedder, is_ensemble, members_of
    from engine.models.runtime import EXPORTED, build_onnx_embedder, resolve_runtime

    if is_ensemble(name):  # members are the process-wide ones: an ensemble and its members share their models
        members = members_of(name)
        return EnsembleEmbedder(name, [get_embedder(m, device, "", runtime, precision, calibration)
                                       for m, _ in members],
                                [w for _, w in members])
    from engine.models.tflite import TFLITE_EMBEDDERS

    if name in TFLITE_EMBEDDERS:  # OpenVINO only: its weights are a TFLite file
        return TFLITE_EMBEDDERS[name](device=device, runtime=resolve_runtime(name, device, runtime), precision=precision)
    if name not in EMBEDDERS:
        raise KeyError(f"unknown embedder {name!r}; choose one of {', '.join(embedder_names())}")
    runtime = resolve_runtime(name, device, runtime)
    if runtime in EXPORTED:
        return build_onnx_embedder(name, device=device, runtime=runtime, precision=precision,
                                   calibration=calibration)
    return EMBEDDERS[name](device=device, **kwargs)


def embedder_names() -> list[str]:
    """Every embedder a setting may name: the single backbones, then the named ensembles."""
    from engine.models.ensemble import ENSEMBLES
    from engine.models.tflite import TFLITE_EMBEDDERS

    return list(EMBEDDERS) + list(TFLITE_EMBEDDERS) + list(ENSEMBLES)


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


def get_embedder(name: str, device: str = "auto", head: str = "", runtime: str = "auto",
                 precision: str = "auto", calibration: str = "") -> Embedder:
    """The process-wide embedder of that name, device and runtime (built on first use), followed by the
    projection head checkpoint ``head`` when one is given (see ``python -m engine train-embedding``).
    ``runtime``: "auto" (on the CPU the fastest installed of OpenVINO and ONNX Runtime when the embedder has an
    export, else torch), "torch", "onnxruntime" or "openvino"; ``precision``: OpenVINO's ("auto", "bf16", "int8",
    "f32"); ``calibration``: the catalogue folder int8 models are calibrated on ("": the generated demo; ignored at
    any other precision, so one f32 embedder serves every catalogue)."""
    from engine.models.runtime import resolve_runtime

    from engine.models.ensemble import is_ensemble

    calibration = int8_calibration(precision, calibration)
    key = ("embedder", name, device, runtime, precision, calibration)
    if is_ensemble(name):  # built outside the lock: its members take it
        with _lock:
            base = _cache.get(key)
        if base is None:
            base = build_embedder(name, device=device, runtime=runtime, precision=precision, calibration=calibration)
            with _lock:
                base = _cache.setdefault(key, base)
    else:
        runtime = resolve_runtime(name, device, runtime)
        with _lock:
            precision, calibration = (precision, calibration) if runtime == "openvino" else ("auto", "")
            key = ("embedder", name, device, runtime, precision, calibration)
            if key not in _cache:
                _cache[key] = build_embedder(name, device=device, runtime=runtime, precision=precision,
                                             calibration=calibration)
            base = _cache[key]
    if not head:
        return base
    from engine.models.heads import HeadEmbedder

    hkey = ("head", name, device, runtime, precision, calibration, str(head), _signature(head))
    with _lock:
        if hkey not in _cache:
            _cache[hkey] = HeadEmbedder(base, head)
        return _cache[hkey]


def int8_calibration(precision: str, calibration: str) -> str:
    """The calibration folder an embedder is built and cached with: resolved at int8, "" at any other precision
    (OpenVINO is asked only where "auto" may mean int8, so a machine without it still runs torch)."""
    from engine.models import openvino_rt as ovrt

    wanted = (precision or "auto").strip().lower()
    if not calibration or wanted not in ("int8", "auto"):
        return ""
    if wanted == "auto" and not (ovrt.INT8_HOLDS_ACCURACY and ovrt.openvino_available()
                                 and ovrt.resolve_precision("auto") == "int8"):
        return ""
    from engine.models.quantize import calibration_folder

    return calibration_folder(calibration)


def prepare_embedder(embedder: Embedder, batch: int) -> None:
    """Compile an embedder's OpenVINO models now, rather than at the first match, side by side: for batches of
    ``batch`` crops at its input size (an ensemble's one vectors model, else each backbone), and each backbone for
    the region batches of the hybrid and pooled windows at the usual heights of a person's box
    (``openvino_rt.PREPARED_REGION_HEIGHTS``). Nothing for other runtimes."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.models.openvino_rt import PREPARED_REGION_HEIGHTS

    base = getattr(embedder, "base", embedder)  # a projection head runs on its base embedder
    members = getattr(base, "members", [base])
    fused = getattr(base, "vectors_graph", None)  # an OpenVINO ensemble embeds through one model
    backbones = [m.backbone for m in members if callable(getattr(getattr(m, "backbone", None), "prepare", None))]
    if not backbones or batch < 1:
        return
    h, w = base.input_hw
    embed_shape = (int(batch), 3, h, w)
    jobs = [[(fused, embed_shape)]] if fused is not None else [[(b, embed_shape)] for b in backbones]
    if getattr(base, "supports_bands", False):
        jobs += [[(b, (b.region_batch, 3, height, w)) for height in PREPARED_REGION_HEIGHTS] for b in backbones]
    with ThreadPoolExecutor(len(jobs)) as pool:  # OpenVINO compiles without the GIL
        list(pool.map(lambda todo: [graph.prepare(shape) for graph, shape in todo], jobs))


def get_pose_estimator():  # -> engine.models.pose.PoseEstimator
    """The process-wide body keypoint model (MoveNet Lightning, built on first use)."""
    from engine.models.pose import PoseEstimator
    from engine.models.runtime import cpu_threads

    with _lock:
        if ("pose",) not in _cache:
            _cache[("pose",)] = PoseEstimator(cpu_threads())
        return _cache[("pose",)]


def get_garment_head(path: str):  # -> engine.models.garments.GarmentHead
    """The process-wide garment head of that checkpoint (loaded on first use, reloaded when it changes)."""
    from engine.models.garments import GarmentHead
    key = ("garment", str(path), _signature(path))
    with _lock:
        if key not in _cache:
            _cache[key] = GarmentHead.load(path)
        return _cache[key]


__all__ = ["DETECTORS", "EMBEDDERS", "Detector", "Embedder", "build_detector", "build_embedder", "embedder_names",
           "get_detector", "get_embedder",
           "get_garment_head", "get_pose_estimator", "prepare_embedder"]
