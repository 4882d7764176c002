"""Int8 embedder backbones: post-training static quantisation of an exported backbone with NNCF.

The ONNX export (engine.models.runtime) is read by OpenVINO and quantised by ``nncf.quantize`` (weights per
channel, activations per tensor, NNCF's "performance" preset with fast bias correction), calibrated on crops of the
built-in demo (engine.io.demo: shop images, their annotated regions, clip frames and garment windows of them), so a
fresh clone quantises offline. The quantised model is cached as OpenVINO IR under
``<LIVEMATCH_HOME>/openvino/<name>-<key>-int8.xml`` (and ``.bin``); the key digests the ONNX export's key, NNCF's
version and the calibration recipe (``QUANT_FORMAT``), so a change to any of them quantises again. A cached model
that OpenVINO cannot read, or whose recorded key is not the expected one, is quantised again.

Measured on the 2-core development CPU (docs/performance-cpu.md): int8 vectors are within cosine 0.94 / 0.91 / 0.98
of f32's for Lite0 / Lite1 / Lite2 on 257 crops of watchlive-dev (means 0.990 / 0.990 / 0.994), dev region top-1
falls from 0.707 to 0.667 and clip top-1 from 0.714 to 0.571, and int8 embeds only about 1.1x faster than f32, so
int8 is offered (``--precision int8``) but "auto" does not choose it (engine.models.openvino_rt).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from engine.errors import ModelError

QUANT_FORMAT = "nncf-ptq-performance-fbc/demo-calibration-v1"  # bump to quantise every cached model again
CALIBRATION_CROPS = 300  # NNCF's default subset size
RT_INFO = ["livematch", "int8_key"]  # where the IR records its key
_lock = threading.Lock()


def nncf_available() -> bool:
    try:
        import nncf  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is the same as a missing one
        return False
    return True


def int8_path(name: str, onnx_key: str) -> tuple[Path, str]:
    """(cached int8 IR file, its key) of an exportable embedder whose ONNX export has the key ``onnx_key``."""
    import nncf

    from engine.config import cache_home

    key = hashlib.sha256("\n".join([onnx_key, nncf.__version__, QUANT_FORMAT,
                                    str(CALIBRATION_CROPS)]).encode()).hexdigest()[:16]
    return cache_home() / "openvino" / f"{name}-{key}-int8.xml", key


def calibration_crops(n: int = CALIBRATION_CROPS, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB crops of the built-in demo (generated once under the livematch home), the kinds of crops the
    pipeline embeds: whole shop images, their annotated regions, whole clip frames, and garment windows of frames
    (the exhaustive strategy's windows of a random box in the frame). Seeded: the same crops on every machine."""
    from engine.config import cache_home
    from engine.io.catalogue import load_catalogue
    from engine.io.demo import generate_demo
    from engine.io.images import crop, read_rgb
    from engine.io.video import sample_frames
    from engine.geometry import garment_windows

    demo = generate_demo(cache_home() / "calibration" / "demo", n_products=8, n_clips=4, seed=0)
    catalogue = load_catalogue(demo)
    rng = np.random.default_rng(seed)
    shop: list[np.ndarray] = []
    for p in catalogue.products.values():
        for path in p.images:
            shop.append(read_rgb(path))
        for r in p.regions:
            shop.append(crop(read_rgb(r.image_path), r.box))
    frames = [f.image for c in catalogue.clips.values() for f in sample_frames(c.path, 10)]
    windows: list[np.ndarray] = []
    for img in frames:
        h, w = img.shape[:2]
        x0, y0 = rng.uniform(0, 0.3) * w, rng.uniform(0, 0.2) * h
        box = (x0, y0, x0 + rng.uniform(0.5, 0.7) * w, y0 + rng.uniform(0.6, 0.8) * h)
        windows += [crop(img, tuple(int(round(v)) for v in b)) for b in garment_windows(box)]
    pool = shop + frames + windows
    order = rng.permutation(len(pool))
    picked = [pool[i] for i in order[:n]]
    return [c for c in picked if c.size and min(c.shape[:2]) >= 4]


def quantize_onnx(onnx_file: Path, preprocess, out: Path, key: str, crops: list[np.ndarray]) -> Path:
    """Quantise the ONNX backbone at ``onnx_file`` to int8 with NNCF, calibrated on ``crops`` (each run through
    ``preprocess``, one crop per calibration sample), and save the IR at ``out`` (atomically: the .bin, then the
    .xml, renamed into place), its key in the model's runtime info."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_file))
    dataset = nncf.Dataset([preprocess([c]) for c in crops])
    quantised = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
                              subset_size=len(crops), fast_bias_correction=True)
    quantised.set_rt_info(key, RT_INFO)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        ov.save_model(quantised, str(tmp / out.name), compress_to_fp16=False)
        os.replace(tmp / out.with_suffix(".bin").name, out.with_suffix(".bin"))
        os.replace(tmp / out.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def recorded_key(model) -> str:  # model: openvino.Model
    """The key an int8 IR was saved with ("" when it has none)."""
    try:
        return str(model.get_rt_info(RT_INFO).astype(str))
    except Exception:  # noqa: BLE001 - no such entry
        return ""


def ensure_int8(name: str, preprocess, onnx_key: str, ensure_onnx) -> tuple[Path, str]:
    """(the int8 IR of an exportable embedder, its key): the cached file, quantised first when it is missing,
    unreadable or not the expected model (its ONNX export is made first when that is missing). ``preprocess``: the
    embedder's (crops -> (N, 3, H, W) float32), used on the calibration crops; ``onnx_key`` and ``ensure_onnx``
    (name -> the ONNX file, exported when missing) come from engine.models.runtime, which calls this."""
    if not nncf_available():
        raise ModelError("int8 needs NNCF: pip install -r requirements.txt, or use --precision f32")
    import openvino as ov


    with _lock:
        path, key = int8_path(name, onnx_key)
        if path.is_file():
            try:
                if recorded_key(ov.Core().read_model(str(path))) == key:
                    return path, key
            except Exception:  # noqa: BLE001 - corrupt: quantise again
                pass
        onnx_file = ensure_onnx(name)
        try:
            quantize_onnx(onnx_file, preprocess, path, key, calibration_crops())
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"NNCF could not quantise {name} ({type(e).__name__}: {e})") from e
        return path, key

