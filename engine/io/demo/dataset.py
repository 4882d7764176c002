"""Writing the built-in demo dataset to disk, and replacing an older one in place without debris.

``generate_demo(out_dir)`` writes a small dataset in the Tianchi live-stream layout, so the importer that
reads the real data reads this one too::

    OUT/image/<item_id>/<n>.jpg                shop images of each catalogue product
    OUT/image_annotation/<item_id>/<n>.json    {"item_id", "img_name", "annotations": [...]}
    OUT/video/<video_id>.mp4                   livestream-like clips, 20 fps
    OUT/video_annotation/<video_id>.json       {"video_id", "frames": [{"frame_index", "annotations"}]}
    OUT/demo.json                              products, clips and the parameters that made them

Ground truth follows the competition's convention: a clip shows the product whose ``item_id`` equals its
``video_id``. Everything is drawn with OpenCV from a seeded numpy generator, so the same parameters give the
same shop images and annotations, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from engine.config import cache_home, variable
from engine.errors import EngineError
from engine.io.demo.clips import FPS, clip_frames
from engine.io.demo.presenter import model_photo
from engine.io.demo.sprites import SHOP_SIZE, MAX_PRODUCTS, DemoProduct, absent_product, plan_products, render_sprite, shop_image

DEMO_VERSION = 3  # 2: a presenter wearing the product (and a model in a shop photo), eight patterns, absent products; 3: plain
BUILTIN: dict[str, int] = {"n_products": 8, "n_clips": 4, "n_absent": 1}  # the app's and `engine demo`'s demo
SHOP_IMAGES_PER_PRODUCT = 3
ANNOTATE_EVERY = 10


def _write_clip(path: Path, frames: Iterator[tuple[np.ndarray, list[int]]], size: tuple[int, int],
                n: int) -> list[list[int]]:
    """Encode frames to an mp4 (mp4v), check it reads back with ``n`` frames, and return every frame's box."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
    if not writer.isOpened():
        raise EngineError(f"OpenCV cannot write mp4 video to {path}")
    boxes = []
    try:
        for frame, box in frames:
            writer.write(frame)
            boxes.append(box)
    finally:
        writer.release()
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    if count != n:
        raise EngineError(f"demo clip {path.name} reads back with {count} frames, expected {n}")
    return boxes


def on_model(sprite, p: DemoProduct, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """The last shop photo of a product: worn by a model, as shops photograph garments (the clips show it worn)."""
    img, outline = model_photo(sprite, p.category, rng, SHOP_SIZE)
    lo, hi = np.floor(outline.min(axis=0)), np.ceil(outline.max(axis=0))
    box = [int(np.clip(v, 0, SHOP_SIZE - 1)) for v in (lo[0], lo[1], hi[0], hi[1])]
    return img, box


def _annotation(box: list[int], p: DemoProduct) -> dict[str, Any]:
    return {"box": box, "label": p.category, "instance_id": int(p.item_id) * 100 + 1, "viewpoint": 0, "display": 1}


def _write_json(path: Path, obj: Any, **kwargs: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, **kwargs), encoding="utf-8")


def _build(out: Path, params: dict[str, Any]) -> None:
    """Write the whole dataset under ``out``, which exists and is empty; demo.json comes last."""
    seed, size, n_frames = params["seed"], tuple(params["frame_size"]), params["frames_per_clip"]
    n_products, absent = params["n_products"], params.get("n_absent", 0)
    planned = plan_products(n_products + absent, seed)
    products = planned[:n_products]
    planned = products + [absent_product(p, products) for p in planned[n_products:]]
    sprites = [render_sprite(p) for p in planned]
    for i, (p, sprite) in enumerate(zip(products, sprites)):
        rng = np.random.default_rng([seed, 2, i])
        (out / "image" / p.item_id).mkdir(parents=True)
        for k in range(SHOP_IMAGES_PER_PRODUCT):
            img, box = shop_image(sprite, rng) if k < SHOP_IMAGES_PER_PRODUCT - 1 else on_model(sprite, p, rng)
            cv2.imwrite(str(out / "image" / p.item_id / f"{k}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            _write_json(out / "image_annotation" / p.item_id / f"{k}.json",
                        {"item_id": p.item_id, "img_name": f"{k}.jpg", "annotations": [_annotation(box, p)]})
    (out / "video").mkdir()
    (out / "video_annotation").mkdir()
    shown = list(range(params["n_clips"])) + list(range(n_products, n_products + absent))
    for i in shown:
        p = planned[i]
        frames = clip_frames(sprites[i], p.category, size, n_frames, np.random.default_rng([seed, 3, i]))
        boxes = _write_clip(out / "video" / f"{p.item_id}.mp4", frames, size, n_frames)
        annotated = [{"frame_index": f, "annotations": [_annotation(boxes[f], p)]}
                     for f in range(0, n_frames, ANNOTATE_EVERY)]
        _write_json(out / "video_annotation" / f"{p.item_id}.json", {"video_id": p.item_id, "frames": annotated})
    _write_json(out / "demo.json", {
        "version": DEMO_VERSION, "seed": seed, "params": params,
        "products": {p.item_id: {"name": p.name, "category": p.category} for p in products},
        "clips": {planned[i].item_id: planned[i].item_id for i in shown},
        "absent": {p.item_id: {"name": p.name, "category": p.category} for p in planned[n_products:]},
    }, ensure_ascii=False, indent=1)


def _is_current(out: Path, params: dict[str, Any]) -> bool:
    """True if ``out`` holds a finished demo made by this version with these parameters."""
    try:
        meta = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("version") == DEMO_VERSION and meta.get("params") == params


def generate_demo(out_dir: str | Path, n_products: int = 8, n_clips: int = 4, seed: int = 0,
                  frames_per_clip: int = 60, frame_size: tuple[int, int] = (270, 480), n_absent: int = 0) -> Path:
    """Write the demo dataset to ``out_dir`` and return it.

    ``n_absent`` clips show products that are not in the catalogue (no shop images): their truth, the clip's
    video_id, is absent from ``image/``, so a right answer is "not in the catalogue" (open set). The built-in demo
    has one (``BUILTIN``).

    ``frame_size`` is (width, height), portrait like real livestreams (540x960); both must be even. Clip ``i``
    shows product ``i``, and its video_id is that product's item_id. A finished demo with the same parameters
    is left as it is; one with other parameters is replaced. The dataset is built in a temporary sibling folder
    and renamed into place, so ``out_dir`` never holds half a demo. A non-empty folder that is not a demo is
    never overwritten (``FileExistsError``).
    """
    out = Path(out_dir).expanduser()
    width, height = (int(v) for v in frame_size)
    if not 1 <= n_products <= MAX_PRODUCTS:
        raise ValueError(f"n_products must be between 1 and {MAX_PRODUCTS}, got {n_products}")
    if not 0 <= n_clips <= n_products:
        raise ValueError(f"n_clips must be between 0 and n_products ({n_products}), got {n_clips}")
    if not 0 <= n_absent or n_products + n_absent > MAX_PRODUCTS:
        raise ValueError(f"n_absent must be between 0 and {MAX_PRODUCTS - n_products}, got {n_absent}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if frames_per_clip < 1:
        raise ValueError(f"frames_per_clip must be at least 1, got {frames_per_clip}")
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ValueError(f"frame_size must be even and at least 64x64, got {width}x{height}")
    params = {"n_products": int(n_products), "n_clips": int(n_clips), "seed": int(seed),
              "frames_per_clip": int(frames_per_clip), "frame_size": [width, height], "fps": FPS}
    if n_absent:  # only then, so that the parameters (and the files) of a demo without one stay as they were
        params["n_absent"] = int(n_absent)
    if _is_current(out, params):
        return out
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the demo is ordinary data
        _build(tmp, params)
        if not _is_current(out, params):  # else another process finished the same demo first
            _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _install(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, moving an earlier demo (or empty folder) out of the way first."""
    _check_replaceable(out)
    if not out.exists():
        os.replace(tmp, out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, trash / out.name)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(trash / out.name, out)  # put the old demo back rather than leave nothing
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _check_replaceable(out: Path) -> None:
    """Refuse to replace anything but a missing or empty folder or an earlier demo."""
    if out.exists() and not (out.is_dir() and ((out / "demo.json").is_file() or not any(out.iterdir()))):
        raise FileExistsError(f"{out} exists and is not a livematch demo; not overwriting it")


def default_demo_dir() -> Path:
    """Where the app keeps its demo: ``$LIVEMATCH_DEMO_DIR``, else ``<livematch home>/demo``."""
    env = variable("LIVEMATCH_DEMO_DIR")
    return Path(env).expanduser() if env else cache_home() / "demo"


def builtin_demo(out_dir: str | Path | None = None) -> Path:
    """The built-in demo (``BUILTIN``) in ``out_dir``, default ``default_demo_dir()``, generated when missing."""
    return generate_demo(out_dir or default_demo_dir(), **BUILTIN)
