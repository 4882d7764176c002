"""Files: content digests, and atomic writes: a temporary file beside the target, renamed over it only once fully written.

A reader sees the old file or the new one, never half of one; a failed write leaves no debris.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_write(path: str | Path, binary: bool = False, fsync: bool = False) -> Iterator[IO]:
    """``with atomic_write(p) as f: f.write(...)``; the parent folder is created when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MAX_JSON_BYTES = 16 * 1024 * 1024  # a catalogue's JSON files (annotations, products.json) are far smaller


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(path: str | Path, max_bytes: int = MAX_JSON_BYTES) -> object:
    """A JSON file parsed within bounds: at most ``max_bytes``, UTF-8, standard JSON only (no NaN or Infinity),
    nesting and integer length as the parser allows. Every failure is a ValueError (or OSError) with the reason,
    never a RecursionError or OverflowError."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{size} bytes, more than the {max_bytes} allowed")
    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON ({e.msg}, line {e.lineno})") from None
    except ValueError as e:  # Python's limit on the digits of an integer, NaN or Infinity
        if "digits" in str(e):
            raise ValueError("an integer with more digits than Python reads") from None
        raise ValueError(str(e).split(";")[0]) from None


def shown_name(name: str | Path) -> str:
    """A file name safe to print and store as text: bytes that are not UTF-8 (surrogates) shown as \\x escapes."""
    text = str(name)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8_name(name: str | Path) -> bool:
    """True when a file name (as the OS gave it) is valid UTF-8."""
    try:
        str(name).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
