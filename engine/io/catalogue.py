"""Read a product catalogue: the Tianchi live-stream layout, or a plain folder per product.

Missing, unreadable or unsafe files are reported in ``Catalogue.problems`` and skipped, never fatal: every JSON file
is parsed within bounds (``engine.io.files.read_json``), each product is read on its own (one bad file costs that
file, never the catalogue), and names that are not UTF-8 are reported with their bytes escaped.

Annotated boxes are given in pixels of the photo as stored; photos are read at most ``MAX_SIDE`` pixels on a side
(``engine.io.images.read_rgb``), so the boxes are scaled with them here, and a box outside its photo is reported
and skipped (never widened to the whole photo).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.categories import english
from engine.errors import CatalogueError, EngineError
from engine.io.annotations import fit_regions, parse_annotations
from engine.io.files import is_utf8_name, read_json, shown_name
from engine.io.video import VIDEO_SUFFIXES
from engine.types import Product, RegionRef

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
ALL_PROBLEMS = "python -m engine build-index --all-problems"  # prints every problem (the app shows 200)
MAX_ANNOTATION_BYTES = 4 * 1024 * 1024  # one image's or one clip's annotation file
MAX_FRAME_INDEX = 10**8
# What reading one file or one product may raise besides EngineError: reported, that file or product skipped.
READ_ERRORS = (OSError, ValueError, TypeError, OverflowError, RecursionError, AttributeError, KeyError, IndexError)


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


def rel(root: Path, path: Path) -> str:
    """A path inside the catalogue as text to report: relative to the root, non-UTF-8 bytes escaped."""
    try:
        return shown_name(path.relative_to(root))
    except ValueError:
        return shown_name(path)


def _safe_files(root: Path, folder: Path, suffixes: tuple[str, ...], problems: list[str]) -> list[Path]:
    files = []
    try:
        entries = sorted(folder.iterdir(), key=lambda q: _natural_key(q.name))
    except OSError as e:
        problems.append(f"{rel(root, folder)}: cannot be listed ({type(e).__name__}), skipped")
        return []
    for p in entries:
        if not is_utf8_name(p.name):
            problems.append(f"{rel(root, p)}: the file name is not UTF-8, skipped")
            continue
        if p.suffix.lower() not in suffixes:
            continue
        if not _inside(root, p):
            problems.append(f"{rel(root, p)}: refused, it leads outside the catalogue")
            continue
        try:
            usable = p.is_file() and p.stat().st_size > 0
        except OSError:
            usable = False
        if not usable:
            problems.append(f"{rel(root, p)}: empty or not a file, skipped")
            continue
        files.append(p)
    return files


def _natural_key(name: str) -> tuple[Any, ...]:
    stem = Path(name).stem
    if stem.isascii() and stem.isdigit() and len(stem) <= 18:  # int() refuses thousands of digits
        return (0, int(stem), name)
    return (1, 0, name)


def _read_json(path: Path, problems: list[str], root: Path,
               max_bytes: int = MAX_ANNOTATION_BYTES) -> dict[str, Any] | None:
    try:  # an unreadable folder (no permission) costs this file alone, not its product
        if not path.is_file():
            return None
    except OSError as e:
        problems.append(f"{rel(root, path)}: unreadable ({type(e).__name__}), ignored")
        return None
    if not _inside(root, path):
        problems.append(f"{rel(root, path)}: refused, it leads outside the catalogue")
        return None
    try:
        data = read_json(path, max_bytes)
    except (OSError, ValueError) as e:
        problems.append(f"{rel(root, path)}: unreadable ({e}), ignored")
        return None
    if not isinstance(data, dict):
        problems.append(f"{rel(root, path)}: JSON is not an object, ignored")
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


def _names(root: Path, problems: list[str]) -> dict[str, dict[str, Any]]:
    """Optional display names: demo.json (built-in demo) or products.json {id: {"name": ..., "shop": ...}}."""
    for fname in ("products.json", "demo.json"):
        p = root / fname
        if p.is_file():
            data = _read_json(p, problems, root, 64 * MAX_ANNOTATION_BYTES)
            prods = (data or {}).get("products", data)
            if not isinstance(prods, dict):
                return {}
            return {str(k): v for k, v in prods.items() if isinstance(v, dict)}
    return {}


def _text(meta: dict[str, Any], key: str) -> str:
    """A text field of products.json ("" when absent or not text)."""
    v = meta.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return v if isinstance(v, str) else ""


def _product_dirs(root: Path, folder: Path, problems: list[str]) -> list[Path]:
    """The sub-folders of ``folder`` that may be products: inside the catalogue, UTF-8 names."""
    out = []
    for d in sorted(folder.iterdir(), key=lambda q: shown_name(q.name)):
        if d.name.startswith("."):
            continue
        if not is_utf8_name(d.name):
            problems.append(f"{rel(root, d)}: the folder name is not UTF-8, skipped")
            continue
        try:
            if not d.is_dir():
                continue
        except OSError:
            continue
        if not _inside(root, d):
            problems.append(f"{rel(root, d)}: refused, it leads outside the catalogue")
            continue
        out.append(d)
    return out


def load_tianchi(root: str | Path) -> Catalogue:
    """Read image/<item>/<n>.jpg, image_annotation/, video/ and video_annotation/."""
    root = Path(root).absolute()
    problems: list[str] = []
    names = _names(root, problems)
    products: dict[str, Product] = {}
    for item_dir in _product_dirs(root, root / "image", problems):
        pid = item_dir.name
        try:
            product = _tianchi_product(root, item_dir, names.get(pid, {}), problems)
        except READ_ERRORS as e:  # one product's files, never the catalogue
            problems.append(f"image/{pid}: unreadable ({type(e).__name__}), product skipped")
            continue
        if product is not None:
            products[pid] = product
    if not products:
        raise CatalogueError(f"no products found under {root / 'image'}")
    clips = _tianchi_clips(root, products, problems)
    return Catalogue(str(root), "tianchi", products, clips, tuple(problems))


def _tianchi_product(root: Path, item_dir: Path, meta: dict[str, Any], problems: list[str]) -> Product | None:
    """One product of a Tianchi catalogue: its images and their annotated regions (None when it has no images)."""
    pid = item_dir.name
    images = _safe_files(root, item_dir, IMAGE_SUFFIXES, problems)
    if not images:
        problems.append(f"image/{pid}: no images, product skipped")
        return None
    regions: list[RegionRef] = []
    for img in images:
        where = f"image_annotation/{pid}/{img.stem}.json"
        ann = _read_json(root / "image_annotation" / pid / f"{img.stem}.json", problems, root)
        if ann is not None:
            found = parse_annotations(ann.get("annotations", []), pid, str(img), problems, where)
            regions.extend(fit_regions(found, img, problems, where))
    sold = [r for r in regions if r.instance_id != 0]
    category = sold[0].category if sold else (regions[0].category if regions else "")
    name = _text(meta, "name") or (f"{pid} · {english(category)}" if category else pid)
    return Product(pid, name, tuple(str(p) for p in images), tuple(regions), category, _text(meta, "shop"))


def _tianchi_clips(root: Path, products: dict[str, Product], problems: list[str]) -> dict[str, ClipRef]:
    videos: dict[str, Path] = {}
    if (root / "video").is_dir():
        videos = {p.stem: p for p in _safe_files(root, root / "video", VIDEO_SUFFIXES, problems)}
    ann_dir = root / "video_annotation"
    annotated = set()
    if ann_dir.is_dir():
        annotated = {p.stem for p in _safe_files(root, ann_dir, (".json",), problems)}
    clips: dict[str, ClipRef] = {}
    for vid in sorted(set(videos) | annotated):
        frames: list[tuple[int, tuple[RegionRef, ...]]] = []
        data = _read_json(ann_dir / f"{vid}.json", problems, root) if vid in annotated else None
        for fr in (data or {}).get("frames", []) if isinstance((data or {}).get("frames", []), list) else []:
            index = fr.get("frame_index") if isinstance(fr, dict) else None
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_FRAME_INDEX:
                continue
            regs = parse_annotations(fr.get("annotations", []), vid, "", problems, f"video_annotation/{vid}.json")
            frames.append((index, regs))
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
    names = _names(root, problems)
    products: dict[str, Product] = {}
    for d in _product_dirs(root, root, problems):
        images = _safe_files(root, d, IMAGE_SUFFIXES, problems)
        if not images:
            problems.append(f"{d.name}: no images, product skipped")
            continue
        meta = names.get(d.name, {})
        products[d.name] = Product(d.name, _text(meta, "name") or d.name, tuple(str(p) for p in images), (),
                                   _text(meta, "category"), _text(meta, "shop"))
    if not products:
        raise CatalogueError(f"no product folders with images under {root}")
    return Catalogue(str(root), "folders", products, {}, tuple(problems))
