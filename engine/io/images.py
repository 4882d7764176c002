"""Safe image reading: any mode to RGB, EXIF orientation applied, decompression bombs refused."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import ImageError
from engine.geometry import Box

MAX_PIXELS = 64_000_000  # about 8000x8000; larger images are refused, not decoded
MAX_SIDE = 1600  # catalogue photos are read at most this large on a side (annotated boxes are scaled with them)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as ``read_rgb`` orients it, from its header (nothing decoded);
    ImageError when the header cannot be read."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                turned = im.getexif().get(0x0112) in _TURNED
            except Exception:  # noqa: BLE001 - a broken EXIF block: read_rgb ignores it the same way
                turned = False
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ImageError(f"{Path(path).name}: not a readable image ({type(e).__name__})") from e
    return (h, w) if turned else (w, h)


def stored_scale(size: tuple[int, int], max_side: int = MAX_SIDE) -> float:
    """The factor ``read_rgb`` scales an image of this (width, height) by (1 when it is not downscaled)."""
    longest = max(size)
    return max_side / longest if longest > max_side else 1.0


def read_rgb(path: str | Path, max_side: int = MAX_SIDE) -> np.ndarray:
    """Read an image file as an RGB uint8 array (HxWx3), downscaled so its longer side <= max_side."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageError(f"{path.name}: {im.width}x{im.height} is too large to decode safely")
                im.draft("RGB", (max_side, max_side))
                im = ImageOps.exif_transpose(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(im, dtype=np.float32)
                    im = Image.fromarray((arr / max(arr.max(), 1.0) * 255).astype(np.uint8))
                if im.mode in ("RGBA", "LA", "P"):
                    im = im.convert("RGBA")
                    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(bg, im)
                im = im.convert("RGB")
                if max(im.size) > max_side:
                    im.thumbnail((max_side, max_side))
                arr = np.asarray(im, dtype=np.uint8).copy()
    except ImageError:
        raise
    except FileNotFoundError as e:
        raise ImageError(f"{path}: file not found") from e
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path.name}: not a readable image ({type(e).__name__})") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path.name}: corrupt image ({e})") from e
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ImageError(f"{path.name}: image is too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


def crop(image: np.ndarray, box: Box | np.ndarray, min_side: int = 8) -> np.ndarray:
    """Crop a box (x0, y0, x1, y1) clipped to the image; a degenerate box yields the whole image."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = max(0, min(x0, w)), max(0, min(x1, w))
    y0, y1 = max(0, min(y0, h)), max(0, min(y1, h))
    if x1 - x0 < min_side or y1 - y0 < min_side:
        return image
    return image[y0:y1, x0:x1]
