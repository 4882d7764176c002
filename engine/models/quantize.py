"""Int8 embedder backbones: post-training static quantisation of an exported backbone with NNCF.

The ONNX export (engine.models.runtime) is read by OpenVINO and quantised by ``nncf.quantize`` (weights per
channel, activations per tensor, NNCF's "performance" preset with fast bias correction), calibrated on up to 300
crops of real shop photos: the whole images and annotated regions of the catalogue being served (the ``calibration``
setting, else the configured catalogue). Without one (the built-in demo, a fresh clone) it is calibrated on crops of
the generated demo (engine.io.demo: shop images, their regions, clip frames and garment windows of them), so a fresh
clone quantises offline. The quantised model is kept as OpenVINO IR by ``openvino_ir.kept_ir`` (under
``<LIVEMATCH_HOME>/openvino-ir/<name>-int8[-<catalogue digest>]-<key>/``, with the SHA-256 of its files); the key
digests the ONNX export's key, NNCF's version, the calibration recipe (``QUANT_FORMAT``) and the calibration
catalogue's folder, so a change to any of them quantises again, and a kept model that is damaged or made under another
key is quantised again. A catalogue's model is kept as it grows (its folder, not its files, names it): its vectors
stay those its index was built with.

Why real photos (docs/performance-cpu.md, dev region top-1, f32 0.840): calibrated on the generated demo, int8 gives
0.787 with VNNI; calibrated on the dev catalogue's photos 0.853, on another catalogue's (watchlive-sample: 59 photos,
86 regions) 0.840; equivalent calibrations moved it within 0.827-0.853. Capped to AVX2 (no VNNI), the same model
loses 0.013-0.067 over every calibration and recipe tried (0.773-0.827; NNCF's overflow fix and depthwise convolutions
left in f32 included), and int8 embeds 1.2x faster than f32 there (1.6x with VNNI), so int8 is offered
(``--precision int8``) but "auto" does not choose it (engine.models.openvino_rt).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import cache_home
from engine.errors import ModelError
from engine.geometry import garment_windows
from engine.io.catalogue import load_catalogue
from engine.io.demo import generate_demo
from engine.io.demo.dataset import default_demo_dir
from engine.io.files import file_digest
from engine.io.images import crop, read_rgb
from engine.io.video import sample_frames
from engine.models import openvino_rt as ovrt
from engine.models.openvino_ir import kept_ir, kept_ir_folder

QUANT_FORMAT = "nncf-ptq-performance-fbc/demo-calibration-v1"  # bump to quantise every cached model again
CALIBRATION_CROPS = 300  # NNCF's default subset size
MIN_CATALOGUE_CROPS = 8  # a catalogue with fewer readable crops is calibrated on the demo instead
_lock = threading.Lock()
log = logging.getLogger(__name__)


def int8_key(onnx_key: str, calibration: str = "") -> str:
    """The key an int8 model is kept under: the ONNX export's key, NNCF's version, the calibration recipe and the
    calibration catalogue's folder ("": the generated demo)."""
    import nncf

    parts = [onnx_key, nncf.__version__, QUANT_FORMAT, str(CALIBRATION_CROPS)] + ([calibration] if calibration else [])
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def calibration_folder(folder: str | Path | None) -> str:
    """The catalogue folder int8 models are calibrated on, resolved; "" (the generated demo) when none is given, it
    is the app's built-in demo, or it is not a folder (said in the log)."""
    if not folder:
        return ""
    path = Path(folder).expanduser()
    if not path.is_dir():
        log.warning("int8 calibration: %s is not a folder; calibrating on the generated demo", folder)
        return ""
    resolved = path.resolve()
    return "" if resolved == default_demo_dir().expanduser().resolve() else str(resolved)


def catalogue_crops(folder: str | Path, n: int = CALIBRATION_CROPS, seed: int = 0,
                    prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """Up to ``n`` RGB crops of a catalogue's own shop photos: whole images and annotated regions, in a seeded random
    order, each passed through ``prepare`` as it is read (``ensure_int8``: the network's input, so 300 large photos
    are never held at once). Unreadable images are skipped; a folder that is not a catalogue gives none."""
    try:
        catalogue = load_catalogue(folder)
    except Exception:  # noqa: BLE001 - not a catalogue: the caller falls back to the demo
        return []
    pool = [(path, None) for p in catalogue.products.values() for path in p.images]
    pool += [(r.image_path, r.box) for p in catalogue.products.values() for r in p.regions]
    out: list[np.ndarray] = []
    for i in np.random.default_rng(seed).permutation(len(pool)):
        if len(out) >= n:
            break
        path, box = pool[i]
        try:
            img = read_rgb(path)
            c = img if box is None else crop(img, box)
            if c.size and min(c.shape[:2]) >= 4:
                out.append(prepare(c) if prepare else c)
        except Exception:  # noqa: BLE001 - one bad photo never stops a quantisation
            continue
    return out


def calibration_crops(n: int = CALIBRATION_CROPS, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB crops of the built-in demo (generated once under the livematch home), the kinds of crops the
    pipeline embeds: whole shop images, their annotated regions, whole clip frames, and garment windows of frames
    (the exhaustive strategy's windows of a random box in the frame). Seeded: the same crops on every machine."""
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


def quantize_onnx(onnx_file: Path, samples: list[np.ndarray], **options):  # -> openvino.Model
    """The ONNX backbone at ``onnx_file`` quantised to int8 with NNCF, calibrated on ``samples`` (the network's
    input: one preprocessed crop, (1, 3, H, W) float32, each). ``options``: ``nncf.quantize``'s, over the shipped
    recipe (scripts/int8_recipes.py tries others)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_file))
    recipe = {"preset": nncf.QuantizationPreset.PERFORMANCE, "subset_size": len(samples),
              "fast_bias_correction": True, **options}
    return nncf.quantize(model, nncf.Dataset(samples), **recipe)


def ensure_int8(name: str, preprocess, onnx_key: str, ensure_onnx, calibration: str = "") -> tuple[Path, str]:
    """(the int8 IR of an exportable embedder, the SHA-256 of its weights): the kept model, quantised first when it
    is missing, damaged or made under another key (its ONNX export is made first when that is missing).
    ``preprocess``: the embedder's (crops -> (N, 3, H, W) float32), used on the calibration crops; ``onnx_key`` and
    ``ensure_onnx`` (name -> the ONNX file, exported when missing) come from engine.models.runtime, which calls this.
    ``calibration``: the catalogue folder to calibrate on (``calibration_folder``). A folder's photos are read only
    when its model is to be made; one with fewer than ``MIN_CATALOGUE_CROPS`` readable photos and regions shares the
    generated demo's model."""
    if not ovrt.nncf_available():
        raise ModelError("int8 needs NNCF: pip install -r requirements.txt, or use --precision f32")

    def one(crop: np.ndarray) -> np.ndarray:
        return preprocess([crop])

    folder, samples = calibration_folder(calibration), None
    if folder and not kept_ir_folder(_stem(name, folder), int8_key(onnx_key, folder)).exists():
        samples = catalogue_crops(folder, prepare=one)  # the model is to be made: its photos are needed now
        if len(samples) < MIN_CATALOGUE_CROPS:
            log.warning("int8 calibration: %d readable photos and regions in %s; the generated demo's model is used",
                        len(samples), folder)
            folder, samples = "", None

    def quantised():  # -> openvino.Model
        try:
            made = samples if samples is not None else catalogue_crops(folder, prepare=one) if folder else []
            if len(made) < MIN_CATALOGUE_CROPS:
                made = [one(c) for c in calibration_crops()]
            log.info("int8 %s: quantising, calibrated on %s (%d crops)", name, folder or "the generated demo",
                     len(made))
            return quantize_onnx(ensure_onnx(name), made)
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"NNCF could not quantise {name} ({type(e).__name__}: {e})") from e

    with _lock:
        kept = kept_ir(_stem(name, folder), int8_key(onnx_key, folder), quantised)
        if not kept.path.is_file():
            raise ModelError(f"the int8 {name} could not be kept under {kept.path.parent} (a full disk or a read-only "
                             "LIVEMATCH_HOME): use --precision f32")
        return kept.path, (kept.weights or file_digest(kept.path.with_suffix(".bin")))[:16]


def _stem(name: str, folder: str) -> str:
    """The kept int8 model's name: the embedder's, and the calibration folder's digest ("": the generated demo)."""
    return f"{name}-int8" + (f"-{hashlib.sha256(folder.encode()).hexdigest()[:8]}" if folder else "")
