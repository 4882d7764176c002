"""Livestream-side examples: query regions a person said show a product ("a person corrects, the system learns").

They live beside the builds of an index folder, so a rebuild keeps them::

    corrections/log.jsonl     append-only, one JSON object a line: {"adds": [{record}, ...]} (one ``correct``:
                              all its frames or none), {"add": {record}} (older stores) or {"remove": "<id>"}
    corrections/<id>.npy      the raw embeddings of one correction's regions (written before its log line)
    corrections/<id>.jpg      the corrected frame, to show the examples
    corrections/.lock         held while the store is written

Torn writes: every change is one line, written under the lock after the files it names. A line cut short by a
crash (or a disk that filled up) is dropped before the next line is appended, never glued to it; files that no
line names (left by a killed ``correct``) are swept under the lock, and ``remove(["all"])`` deletes every file
of the store.

A correction is one frame of one clip: its regions (query windows, in frame pixels) and their embeddings, the
product, the clip's file name and SHA-256, the frame number, when it was added and with which model key. Vectors are
kept as the embedder gives them and centred like queries when loaded (``ProductIndex.prepare``): livestream
examples are compared to queries in the query domain. A store made with another model key is refused for new
corrections, and its examples are not used (``ExampleSet.note`` says so).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from engine.errors import EngineError
from engine.geometry import Box
from engine.io.files import atomic_write
from engine.types import RegionRef

SOURCE = "livestream correction"  # RegionRef.source of a livestream example


class CorrectionError(EngineError):
    """A correction cannot be stored or removed (unknown product or id, another model key)."""


@dataclass(frozen=True)
class CorrectedFrame:
    """A frame to store as an example: its number and time in the clip, its regions and their raw embeddings (one
    row per box), and its JPEG (shown beside the correction) when there is one."""

    frame_index: int
    time_s: float
    boxes: list[Box]
    vectors: np.ndarray
    jpeg: bytes | None = None


@dataclass(frozen=True)
class Correction:
    """One corrected frame: which product it shows, where it came from, and the regions stored for it."""

    correction_id: str
    product_id: str
    clip: str  # the clip's file name
    clip_sha256: str
    frame_index: int  # the frame's number in the clip
    time_s: float
    boxes: tuple[Box, ...]  # the stored regions (query windows), in frame pixels
    model_key: str
    added_at: str
    regions: str = "product"  # how the regions were chosen (engine.pipeline.correcting.REGION_CHOICES)

    @property
    def frame_key(self) -> tuple[str, int]:
        """Which frame of which clip it is (the clip's SHA-256, or its name when it has none)."""
        return self.clip_sha256 or self.clip, self.frame_index

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.correction_id, "product_id": self.product_id, "clip": self.clip,
                "clip_sha256": self.clip_sha256, "frame_index": self.frame_index, "time_s": self.time_s,
                "boxes": [list(b) for b in self.boxes], "model_key": self.model_key, "added_at": self.added_at,
                "regions": self.regions}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Correction:
        boxes = tuple(tuple(float(v) for v in b) for b in d["boxes"])
        return cls(str(d["id"]), str(d["product_id"]), str(d["clip"]), str(d.get("clip_sha256", "")),
                   int(d["frame_index"]), float(d.get("time_s", 0.0)), boxes, str(d["model_key"]),  # type: ignore[arg-type]
                   str(d.get("added_at", "")), str(d.get("regions", "product")))


@dataclass(frozen=True)
class ExampleSet:
    """The loaded examples of one index: prepared (query-centred) vectors, one RegionRef each, by product."""

    vectors: np.ndarray  # (n, dim), float32, as queries are compared
    refs: tuple[RegionRef, ...]
    by_product: dict[str, np.ndarray] = field(default_factory=dict)
    note: str = ""  # why some stored examples are not used ("" when all are)

    def __len__(self) -> int:
        return len(self.refs)

    @classmethod
    def from_raw(cls, vectors: list[np.ndarray], refs: list[RegionRef], prepare: Callable[[np.ndarray], np.ndarray],
                 dim: int, note: str = "") -> ExampleSet:
        """Examples from raw embeddings (one array per correction, rows aligned with ``refs``), centred by ``prepare``."""
        if not refs:
            return cls(np.zeros((0, dim), np.float32), (), {}, note)
        by_product: dict[str, list[int]] = {}
        for i, r in enumerate(refs):
            by_product.setdefault(r.product_id, []).append(i)
        return cls(prepare(np.concatenate(vectors).astype(np.float32)), tuple(refs),
                   {p: np.array(ids, int) for p, ids in by_product.items()}, note)

    def similarities(self, prepared: np.ndarray, bound: float = -1.0) -> dict[str, tuple[np.ndarray, list[RegionRef]]]:
        """For each product with an example at least ``bound`` similar to some query: cosine matrix (queries x its
        examples) and those examples. Cosines under ``bound`` are -inf: an example counts only where a query is a
        near-duplicate of it, never for a merely similar frame (another product's clip in the same room)."""
        if not self.refs:
            return {}
        sims = np.asarray(prepared, np.float32) @ self.vectors.T
        if bound > -1.0:
            sims = np.where(sims >= bound, sims, -np.inf).astype(np.float32)
        out = {pid: (sims[:, idx], [self.refs[i] for i in idx]) for pid, idx in self.by_product.items()}
        return {pid: v for pid, v in out.items() if np.isfinite(v[0]).any()}


NO_EXAMPLES = ExampleSet(np.zeros((0, 0), np.float32), ())


class CorrectionStore:
    """The corrections of one index folder (``<index_dir>/corrections``)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.log = self.folder / "log.jsonl"

    def signature(self) -> str:
        """Changes whenever a correction is added or removed ("" while there is none)."""
        try:
            st = self.log.stat()
        except OSError:
            return ""
        return f"{st.st_size}-{st.st_mtime_ns}"

    def records(self) -> list[Correction]:
        """The corrections in force, oldest first (a malformed line, such as a torn last one, is skipped)."""
        active: dict[str, Correction] = {}
        try:
            lines = self.log.read_bytes().split(b"\n")
        except OSError:
            return []
        for line in lines:
            try:
                entry = json.loads(line.decode("utf-8"))
                if "adds" in entry:
                    batch = [Correction.from_dict(d) for d in entry["adds"]]  # the whole batch, or none of it
                    active.update((c.correction_id, c) for c in batch)
                elif "add" in entry:
                    c = Correction.from_dict(entry["add"])
                    active[c.correction_id] = c
                elif "remove" in entry:
                    active.pop(str(entry["remove"]), None)
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
                continue
        return list(active.values())

    def add(self, product_id: str, clip: str, clip_sha256: str, frame: CorrectedFrame, model_key: str,
            regions: str = "product") -> Correction:
        """Store one corrected frame; refused when the store holds corrections made with another model key."""
        return self.add_frames(product_id, clip, clip_sha256, [frame], model_key, regions)[0]

    def add_frames(self, product_id: str, clip: str, clip_sha256: str, frames: list[CorrectedFrame], model_key: str,
                   regions: str = "product") -> list[Correction]:
        """Store corrected frames of one clip, all or none: their files first, then one log line naming them all. Refused when the store holds corrections made with
        another model key. A frame already stored as an example of this product (same clip, same frame number) is
        not stored again: returns only what was added ([] when every frame was there already)."""
        if not frames or any(len(f.boxes) == 0 or len(f.boxes) != len(f.vectors) for f in frames):
            raise CorrectionError("no region to store for this frame")
        with self._locked():
            others = sorted({c.model_key for c in self.records() if c.model_key != model_key})
            if others:
                raise CorrectionError(f"the livestream examples in {self.folder} were made with the model "
                                      f"{others[0]!r}, not {model_key!r}: remove them first (python -m engine "
                                      "corrections --clear) or switch back to that model")
            self._sweep()
            have = {c.frame_key for c in self.records() if c.product_id == product_id}
            frames = [f for f in frames if (clip_sha256 or clip, int(f.frame_index)) not in have]
            if not frames:
                return []
            stamp, added = time.strftime("%Y%m%d%H%M%S"), time.strftime("%Y-%m-%dT%H:%M:%S%z")
            made = []
            for frame_index, time_s, boxes, vectors, jpeg in ((f.frame_index, f.time_s, f.boxes, f.vectors, f.jpeg)
                                                              for f in frames):
                c = Correction(f"c{stamp}-{secrets.token_hex(3)}", product_id, clip, clip_sha256, int(frame_index),
                               round(float(time_s), 3), tuple(tuple(float(v) for v in b) for b in boxes),  # type: ignore[misc]
                               model_key, added, regions)
                with atomic_write(self.folder / f"{c.correction_id}.npy", binary=True) as f:
                    np.save(f, np.asarray(vectors, np.float32), allow_pickle=False)
                if jpeg:
                    with atomic_write(self.folder / f"{c.correction_id}.jpg", binary=True) as f:
                        f.write(jpeg)
                made.append(c)
            self._append({"adds": [c.to_dict() for c in made]})
        return made

    def remove(self, ids: list[str]) -> list[Correction]:
        """Remove corrections by id; an unknown id is refused, nothing removed. ``["all"]`` clears the store: every
        file in it goes (orphans of killed writes too), and the log starts again empty."""
        with self._locked():
            active = {c.correction_id: c for c in self.records()}
            if ids == ["all"]:
                self.log.unlink(missing_ok=True)
                self._sweep()
                return list(active.values())
            unknown = [i for i in ids if i not in active]
            if unknown:
                raise CorrectionError(f"no livestream example {unknown[0]!r} (python -m engine corrections lists "
                                      "them)")
            for i in ids:
                self._append({"remove": i})
                for suffix in (".npy", ".jpg"):
                    (self.folder / f"{i}{suffix}").unlink(missing_ok=True)
            return [active[i] for i in ids]

    def image_path(self, correction_id: str) -> Path:
        return self.folder / f"{correction_id}.jpg"

    def files_of(self, correction_id: str) -> list[Path]:
        """The files one correction keeps (its vectors, its frame), those that exist."""
        return [p for p in (self.folder / f"{correction_id}.npy", self.image_path(correction_id)) if p.is_file()]

    @contextlib.contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        """The store's write lock (``.lock`` beside the log), across threads and processes; with ``wait=False``,
        yields whether it was free (and is now held)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _append(self, entry: dict[str, Any]) -> None:
        """One line, appended (under the lock, held by the caller) and synced: a line is the unit of change. A torn
        last line, cut short by a crash, is cut off first, so that it is not glued to this one."""
        with open(self.log, "ab") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            if end:
                with open(self.log, "rb") as r:
                    r.seek(max(0, end - 1))
                    if r.read(1) != b"\n":
                        r.seek(0)
                        data = r.read()
                        f.truncate(data.rfind(b"\n") + 1)  # 0 when the only line is torn
                        f.seek(0, os.SEEK_END)
            f.write(json.dumps(entry, ensure_ascii=False).encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def _sweep(self) -> int:
        """Delete the files no correction in force names (under the lock, held by the caller): vectors and frames
        of a killed ``correct`` or of removed corrections, half-written temporary files. Returns how many."""
        keep = {c.correction_id for c in self.records()}
        gone = 0
        for p in self.folder.iterdir() if self.folder.is_dir() else ():
            name = p.name
            stray = name.startswith(".c") and name.endswith(".tmp")  # atomic_write's temporary files
            ours = name.startswith("c") and p.suffix in (".npy", ".jpg") and p.stem not in keep
            if (stray or ours) and p.is_file():
                p.unlink(missing_ok=True)
                gone += 1
        return gone

    def sweep(self) -> int:
        """``_sweep`` when no other writer holds the store (0 otherwise): run whenever examples are loaded."""
        with self._locked(wait=False) as free:
            return self._sweep() if free else 0

    def load(self, model_key: str, products: dict[str, dict[str, Any]], dim: int,
             prepare: Callable[[np.ndarray], np.ndarray]) -> ExampleSet:
        """The examples usable with an index: same model key, a product it holds, readable vectors."""
        vectors, refs, skipped = [], [], {"model": 0, "product": 0, "file": 0}
        if self.folder.is_dir():
            self.sweep()  # what a killed correct left behind
        for c in self.records():
            if c.model_key != model_key:
                skipped["model"] += 1
                continue
            if c.product_id not in products:
                skipped["product"] += 1
                continue
            try:
                v = np.load(self.folder / f"{c.correction_id}.npy", allow_pickle=False)
            except (OSError, ValueError):
                v = None
            if v is None or v.ndim != 2 or v.shape[1] != dim or len(v) != len(c.boxes):
                skipped["file"] += 1
                continue
            category = str(products[c.product_id].get("category", ""))
            image = self.image_path(c.correction_id)
            vectors.append(v)
            refs += [RegionRef(c.product_id, str(image), b, category, 0, SOURCE) for b in c.boxes]
        return ExampleSet.from_raw(vectors, refs, prepare, dim, _note(skipped))


def _note(skipped: dict[str, int]) -> str:
    why = {"model": "made with another model", "product": "of products no longer indexed",
           "file": "with unreadable vectors"}
    parts = [f"{n} {why[k]}" for k, n in skipped.items() if n]
    return f"livestream examples not used: {', '.join(parts)}" if parts else ""
