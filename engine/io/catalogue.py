"""Read a product catalogue: the Tianchi live-stream layout, or a plain folder per product.

Missing, unreadable or unsafe files are reported in ``Catalogue.problems`` and skipped, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.categories import english
from engine.errors import CatalogueError
from engine.geometry import Box
from engine.types import Product, RegionRef
from engine.io.video import VIDEO_SUFFIXES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class ClipRef:
    """A clip of the dataset, its truth (the product it shows) and its annotated frames."""

    video_id: str
    path: str | None  # None when the annotation exists but the video is missing
    truth: str | None
    frames: tuple[tuple[int, tuple[RegionRef, ...]], ...] = ()


@dataclass(frozen=True)
class Catalogue:
    root: str
    layout: str  # "tianchi" or "folders"
    products: dict[str, Product]
    clips: dict[str, ClipRef] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def n_images(self) -> int:
        return sum(len(p.images) for p in self.products.values())


def _inside(root: Path, path: Path) -> bool:
    """True when path (after following links) stays inside root and is not itself a symlink."""
    try:
        if path.is_symlink():
            return False
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def _safe_files(root: Path, folder: Path, suffixes: tuple[str, ...], problems: list[str]) -> list[Path]:
    files = []
    for p in sorted(folder.iterdir(), key=lambda q: _natural_key(q.name)):
        if p.suffix.lower() not in suffixes:
            continue
        if not _inside(root, p):
            problems.append(f"{p.relative_to(root)}: refused, it leads outside the catalogue")
            continue
        if not p.is_file() or p.stat().st_size == 0:
            problems.append(f"{p.relative_to(root)}: empty or not a file, skipped")
            continue
        files.append(p)
    return files


def _natural_key(name: str) -> tuple[Any, ...]:
    stem = Path(name).stem
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def _parse_box(raw: Any) -> Box | None:
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in raw)
    except (TypeError, ValueError):
        return None
    if not (x1 > x0 and y1 > y0) or min(x0, y0) < -1e4 or max(x1, y1) > 1e5:
        return None
    return (max(0.0, x0), max(0.0, y0), x1, y1)


def parse_annotations(
    items: Any, product_id: str, image_path: str, problems: list[str], where: str
) -> tuple[RegionRef, ...]:
    """Turn an annotation list into regions; bad entries are reported and dropped."""
    regions = []
    if not isinstance(items, list):
        problems.append(f"{where}: 'annotations' is not a list, ignored")
        return ()
    for i, a in enumerate(items):
        box = _parse_box(a.get("box")) if isinstance(a, dict) else None
        if box is None:
            problems.append(f"{where}: annotation {i} has no valid box, ignored")
            continue
        try:
            instance = int(a.get("instance_id", 0) or 0)
        except (TypeError, ValueError):
            instance = 0
        regions.append(RegionRef(product_id, image_path, box, str(a.get("label", "")), instance, "annotation"))
    return tuple(regions)


def _read_json(path: Path, problems: list[str], root: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    if not _inside(root, path):
        problems.append(f"{path.relative_to(root)}: refused, it leads outside the catalogue")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{path.relative_to(root)}: malformed JSON ({type(e).__name__}), ignored")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.relative_to(root)}: JSON is not an object, ignored")
        return None
    return data


def load_catalogue(root: str | Path) -> Catalogue:
    """Detect the layout of a folder and read it."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise CatalogueError(f"catalogue folder not found: {root}")
    if (root / "image").is_dir():
        return load_tianchi(root)
    return load_folders(root)


def _names(root: Path) -> dict[str, dict[str, str]]:
    """Optional display names: demo.json (built-in demo) or products.json {id: {"name": ..., "shop": ...}}."""
    for fname in ("products.json", "demo.json"):
        p = root / fname
        if p.is_file():
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
                prods = data.get("products", data)
                return {str(k): v for k, v in prods.items() if isinstance(v, dict)}
            except (OSError, ValueError, AttributeError):
                return {}
    return {}


def load_tianchi(root: str | Path) -> Catalogue:
    """Read image/<item>/<n>.jpg, image_annotation/, video/ and video_annotation/."""
    root = Path(root).absolute()
    problems: list[str] = []
    names = _names(root)
    products: dict[str, Product] = {}
    for item_dir in sorted((root / "image").iterdir()):
        if not item_dir.is_dir() or not _inside(root, item_dir):
            continue
        pid = item_dir.name
        images = _safe_files(root, item_dir, IMAGE_SUFFIXES, problems)
        if not images:
            problems.append(f"image/{pid}: no images, product skipped")
            continue
        regions: list[RegionRef] = []
        for img in images:
            ann = _read_json(root / "image_annotation" / pid / f"{img.stem}.json", problems, root)
            if ann is not None:
                regions.extend(parse_annotations(ann.get("annotations", []), pid, str(img), problems,
                                                 f"image_annotation/{pid}/{img.stem}.json"))
        sold = [r for r in regions if r.instance_id != 0]
        category = sold[0].category if sold else (regions[0].category if regions else "")
        meta = names.get(pid, {})
        name = str(meta.get("name") or (f"{pid} · {english(category)}" if category else pid))
        products[pid] = Product(pid, name, tuple(str(p) for p in images), tuple(regions), category,
                                str(meta.get("shop") or ""))
    if not products:
        raise CatalogueError(f"no products found under {root / 'image'}")
    clips = _tianchi_clips(root, products, problems)
    return Catalogue(str(root), "tianchi", products, clips, tuple(problems))


def _tianchi_clips(root: Path, products: dict[str, Product], problems: list[str]) -> dict[str, ClipRef]:
    videos: dict[str, Path] = {}
    if (root / "video").is_dir():
        videos = {p.stem: p for p in _safe_files(root, root / "video", VIDEO_SUFFIXES, problems)}
    ann_dir = root / "video_annotation"
    annotated = {p.stem for p in ann_dir.glob("*.json")} if ann_dir.is_dir() else set()
    clips: dict[str, ClipRef] = {}
    for vid in sorted(set(videos) | annotated):
        frames: list[tuple[int, tuple[RegionRef, ...]]] = []
        data = _read_json(ann_dir / f"{vid}.json", problems, root) if vid in annotated else None
        for fr in (data or {}).get("frames", []) if isinstance((data or {}).get("frames", []), list) else []:
            if not isinstance(fr, dict) or not isinstance(fr.get("frame_index"), int):
                continue
            regs = parse_annotations(fr.get("annotations", []), vid, "", problems, f"video_annotation/{vid}.json")
            frames.append((fr["frame_index"], regs))
        path = videos.get(vid)
        if path is None:
            problems.append(f"video/{vid}.mp4: missing, clip skipped")
        truth = vid if vid in products else None
        clips[vid] = ClipRef(vid, str(path) if path else None, truth, tuple(frames))
    return clips


def load_folders(root: str | Path) -> Catalogue:
    """Read a folder with one sub-folder of images per product (the sub-folder's name is the id)."""
    root = Path(root).absolute()
    problems: list[str] = []
    names = _names(root)
    products: dict[str, Product] = {}
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        if not _inside(root, d):
            problems.append(f"{d.name}: refused, it leads outside the catalogue")
            continue
        images = _safe_files(root, d, IMAGE_SUFFIXES, problems)
        if not images:
            problems.append(f"{d.name}: no images, product skipped")
            continue
        meta = names.get(d.name, {})
        products[d.name] = Product(d.name, str(meta.get("name") or d.name), tuple(str(p) for p in images), (),
                                   str(meta.get("category", "")), str(meta.get("shop") or ""))
    if not products:
        raise CatalogueError(f"no product folders with images under {root}")
    return Catalogue(str(root), "folders", products, {}, tuple(problems))
