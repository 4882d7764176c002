"""Edit a catalogue folder: add a product from uploaded images, or copy a catalogue to make it editable.

Every image is decoded (``engine.io.images.read_rgb``) before anything is written. A new product is staged in a
hidden folder inside the catalogue (same file system), then renamed into place with the product's image folder
last, so a failure at any step leaves the catalogue as it was. Images are re-encoded as ``<n>.jpg`` (orientation
applied, metadata dropped, at most 1600 pixels on a side); the uploaded file names are never used as paths.

Layouts, as read by ``engine.io.catalogue``:

* Tianchi: ``image/<id>/<n>.jpg``; ``image_annotation/<id>/<n>.json`` marks the product's box (instance 1, the
  category as label) only in the images whose box the person confirmed. The other images get no annotation, so
  indexing detects their regions (``engine.pipeline.catalogue``): a whole-photo box would index faces and
  backgrounds as the product.
* folders: ``<id>/<n>.jpg`` (this layout keeps no boxes).

A box is in pixels (x0, y0, x1, y1) of the image as stored, that is as ``decode_upload`` returns it (orientation
applied, at most 1600 pixels on a side).

Display names (and the category of folder products) go to ``products.json``; when a catalogue only has the
built-in demo's ``demo.json``, its names are carried over so that they are not lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from engine.errors import CatalogueError, ImageError
from engine.geometry import Box
from engine.io.catalogue import IMAGE_SUFFIXES
from engine.io.files import read_json
from engine.io.uploads import (
    box_list, checked_box, decode_upload, normalise_category, upload_label, validate_product_id)

MAX_IMAGES = 50
JPEG_QUALITY = 92


def read_only_reason(root: str | Path) -> str:
    """Why a catalogue folder cannot be edited ("" when it can): on a read-only file system, or its folders
    (the folder, image/ and image_annotation/ of the Tianchi layout) not writable by their permission bits, which
    are respected even by root (a shared data folder marked r-x is meant to stay as it is)."""
    folder = Path(root)
    for d in (folder, folder / "image", folder / "image_annotation"):
        if not d.is_dir():
            continue
        try:
            if os.statvfs(d).f_flag & os.ST_RDONLY:
                return f"{folder} is on a read-only file system"
            mode = d.stat().st_mode
        except OSError as e:
            return f"{d} cannot be read ({type(e).__name__})"
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(d, os.W_OK):
            return f"{d} is not writable"
    return ""


def catalogue_layout(root: str | Path) -> str:
    """'tianchi' when the folder has image/, else 'folders' (the same rule as ``engine.io.catalogue``)."""
    return "tianchi" if (Path(root) / "image").is_dir() else "folders"


def product_dir(root: str | Path, product_id: str) -> Path:
    """Where a product's images live in this catalogue's layout."""
    root = Path(root)
    return root / "image" / product_id if catalogue_layout(root) == "tianchi" else root / product_id


def add_product(
    root: str | Path,
    product_id: str,
    name: str,
    category: str,
    files: Sequence[tuple[str, bytes]],
    boxes: Sequence[Sequence[float] | None] | None = None,
) -> Path:
    """Add a product with its images (``(filename, bytes)`` pairs) to the catalogue at ``root``.

    ``category`` is a Tianchi category key (Chinese, see ``engine.categories``), its English name, or "".
    ``boxes`` gives, per image, the product's confirmed box in pixels (x0, y0, x1, y1) of that image, or None;
    only images with a box get an annotation. Boxes are clipped to their image; one outside it, without area, or
    given to a catalogue that keeps no boxes (a folder per product) is refused.
    Returns the product's image folder. Raises CatalogueError or ImageError (nothing is written then).
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise CatalogueError(f"catalogue folder not found: {root}")
    pid = validate_product_id(product_id)
    display = " ".join((name or "").split()) or pid
    cat = normalise_category(category)
    if not files:
        raise ImageError("add at least one image")
    if len(files) > MAX_IMAGES:
        raise ImageError(f"at most {MAX_IMAGES} images per product ({len(files)} given)")
    layout = catalogue_layout(root)
    wanted = box_list(boxes, len(files), layout)
    with _locked(root):
        target = product_dir(root, pid)
        ann_target = root / "image_annotation" / pid
        if target.exists() or (layout == "tianchi" and ann_target.exists()):
            raise CatalogueError(f"a product {pid!r} already exists in this catalogue")
        stage = Path(tempfile.mkdtemp(prefix=".livematch-add-", dir=root))
        try:
            decoded = [decode_upload(filename, data, n) for n, (filename, data) in enumerate(files)]
            kept = [None if b is None else checked_box(b, (rgb.shape[1], rgb.shape[0]), upload_label(files[n][0], n))
                    for n, (b, rgb) in enumerate(zip(wanted, decoded))]
            _stage_images(stage, decoded)
            annotated = any(b is not None for b in kept)
            if annotated:
                _stage_annotations(stage / "annotations", pid, cat, kept)
            _write_json(stage / "products.json", _names_with(root, pid, display, cat))
            _commit(root, stage, target, ann_target if annotated else None)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return target


@dataclass(frozen=True)
class Removal:
    """What removing a product deletes, and what it leaves: only files the catalogue reader recognises as the
    product's images (directly in its folder) and annotations (``image_annotation/<id>/*.json``) are deleted; any
    other file or sub-folder stays, and so does a folder that is not empty afterwards."""

    product_id: str
    images: tuple[Path, ...]
    annotations: tuple[Path, ...]
    kept: tuple[Path, ...]  # other entries of the product's folders, left in place

    def describe(self) -> str:
        """What is deleted: "3 images and 2 annotation files"."""
        n, m = len(self.images), len(self.annotations)
        return f"{n} image{'s' if n != 1 else ''} and {m} annotation file{'s' if m != 1 else ''}"

    def kept_note(self) -> str:
        """What stays ("" when nothing else is in the product's folders)."""
        if not self.kept:
            return ""
        return (f"{len(self.kept)} other file(s) or folder(s) in the product's folders stay: only files the catalogue "
                "reads as this product's images and annotations are deleted.")


def removal_plan(root: str | Path, product_id: str) -> Removal:
    """What ``remove_product`` would delete; CatalogueError when there is no such product (or its folder is a link)."""
    root = Path(root).absolute()
    pid = validate_product_id(product_id)
    target = product_dir(root, pid)
    ann_dir = root / "image_annotation" / pid
    for folder in (target, ann_dir):
        if folder.is_symlink():
            raise CatalogueError(f"{folder.relative_to(root)} is a link; not removing through it")
    if not target.is_dir():
        raise CatalogueError(f"no product {pid!r} in this catalogue")
    images, annotations, kept = [], [], []
    for folder, suffixes, found in ((target, IMAGE_SUFFIXES, images), (ann_dir, (".json",), annotations)):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            ok = p.suffix.lower() in suffixes and (p.is_symlink() or p.is_file())
            (found if ok else kept).append(p)
    if not images and not annotations:
        raise CatalogueError(f"no product {pid!r} in this catalogue (its folder holds no images)")
    return Removal(pid, tuple(images), tuple(annotations), tuple(kept))


def remove_product(root: str | Path, product_id: str) -> Removal:
    """Remove a product's images, annotations and products.json entry from the catalogue at ``root`` (see
    ``Removal``): the files are first moved aside together (so a failure leaves the product whole), then deleted;
    the product's folders go only when nothing else is left in them. Returns what was removed."""
    root = Path(root).absolute()
    pid = validate_product_id(product_id)
    with _locked(root):
        plan = removal_plan(root, pid)
        names = root / "products.json"
        try:
            data = read_json(names) if names.is_file() else {}
        except (OSError, ValueError) as e:
            raise CatalogueError(f"products.json is unreadable ({e}); fix or remove it first") from e
        held = data.get("products", data) if isinstance(data, dict) else {}
        trash = Path(tempfile.mkdtemp(prefix=".livematch-remove-", dir=root))
        moved: list[tuple[Path, Path]] = []
        try:
            for files, name in ((plan.annotations, "annotations"), (plan.images, "images")):
                (trash / name).mkdir()
                for src in files:
                    os.rename(src, trash / name / src.name)
                    moved.append((src, trash / name / src.name))
            if isinstance(held, dict) and held.pop(pid, None) is not None:
                _write_json(names, data)
        except BaseException:
            restored = True
            for src, dst in reversed(moved):  # put the product back whole
                try:
                    os.rename(dst, src)
                except OSError:
                    restored = False
            if restored:
                shutil.rmtree(trash, ignore_errors=True)
            else:  # keep what could not be put back, and say where it is
                raise CatalogueError(f"removing {pid} failed half-way; its files are kept in {trash}") from None
            raise
        shutil.rmtree(trash, ignore_errors=True)
        for folder in (root / "image_annotation" / pid, product_dir(root, pid)):
            with contextlib.suppress(OSError):  # not empty (other files are kept) or already gone
                folder.rmdir()
    return plan


def _stage_images(stage: Path, decoded: Sequence[np.ndarray]) -> None:
    """Write the decoded images as <n>.jpg under stage/images."""
    images = stage / "images"
    images.mkdir()
    for n, rgb in enumerate(decoded):
        Image.fromarray(rgb).save(images / f"{n}.jpg", "JPEG", quality=JPEG_QUALITY)
    os.chmod(images, 0o755)


def _stage_annotations(folder: Path, pid: str, category: str, boxes: Sequence[Box | None]) -> None:
    """One annotation file per image with a confirmed box (the product, instance 1); none for the others."""
    folder.mkdir()
    for n, box in enumerate(boxes):
        if box is None:
            continue
        ann = {"box": list(box), "label": category, "instance_id": 1, "viewpoint": 0, "display": 1}
        _write_json(folder / f"{n}.json", {"item_id": pid, "img_name": f"{n}.jpg", "annotations": [ann]})
    os.chmod(folder, 0o755)


def _names_with(root: Path, pid: str, name: str, category: str) -> dict[str, Any]:
    """products.json's content with this product added (seeded from demo.json's names when there is none)."""
    data: dict[str, Any] = {}
    for fname in ("products.json", "demo.json"):
        p = root / fname
        if not p.is_file():
            continue
        try:
            loaded = read_json(p)
        except (OSError, ValueError) as e:
            raise CatalogueError(f"{fname} is unreadable ({e}); fix or remove it first") from e
        if not isinstance(loaded, dict):
            raise CatalogueError(f"{fname} is not a JSON object; fix or remove it first")
        if fname == "products.json":
            data = loaded
        else:
            prods = loaded.get("products", {})
            data = {"products": {str(k): v for k, v in (prods.items() if isinstance(prods, dict) else ())
                                 if isinstance(v, dict)}}
        break
    entry = {"name": name, "category": category}
    if isinstance(data.get("products"), dict):
        data["products"][pid] = entry
    else:
        data[pid] = entry
    return data


def _commit(root: Path, stage: Path, target: Path, ann_target: Path | None) -> None:
    """Rename the staged parts into place, the image folder last; undo the earlier steps if a later one fails."""
    undo: list[Any] = []
    try:
        if ann_target is not None:
            ann_target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(stage / "annotations", ann_target)
            undo.append(lambda: shutil.rmtree(ann_target, ignore_errors=True))
        names = root / "products.json"
        old = names.read_bytes() if names.is_file() else None
        os.replace(stage / "products.json", names)
        undo.append(lambda: names.write_bytes(old) if old is not None else names.unlink(missing_ok=True))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(stage / "images", target)
    except BaseException:
        for step in reversed(undo):
            with contextlib.suppress(OSError):
                step()
        raise


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    os.chmod(path, 0o644)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise edits of one catalogue across threads and processes."""
    fd = os.open(root, os.O_RDONLY)  # a lock on the folder itself: nothing is written to take it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def copy_catalogue(src: str | Path, dst: str | Path) -> Path:
    """Copy a catalogue folder to ``dst`` (which must not exist yet), atomically; links are copied as links."""
    src, dst = Path(src).absolute(), Path(dst).absolute()
    if not src.is_dir():
        raise CatalogueError(f"catalogue folder not found: {src}")
    if dst.exists():
        raise CatalogueError(f"{dst} already exists; not overwriting it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".copy", dir=dst.parent))
    try:
        shutil.copytree(src, tmp / "c", symlinks=True, ignore=shutil.ignore_patterns(".livematch-*"))
        os.rename(tmp / "c", dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
