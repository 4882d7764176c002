"""Livestream-side examples: query regions a person said show a product ("a person corrects, the system learns").

They live beside the builds of an index folder, so a rebuild keeps them::

    corrections/log.jsonl     append-only, one JSON object a line: {"add": {record}} or {"remove": "<id>"}
    corrections/<id>.npy      the raw embeddings of one correction's regions (written before its log line)
    corrections/<id>.jpg      the corrected frame, to show the examples

A correction is one frame of one clip: its regions (query windows, in frame pixels) and their embeddings, the
product, the clip's file name and SHA-256, the frame number, when it was added and with which model key. Vectors are
kept as the embedder gives them and centred like queries when loaded (``ProductIndex.prepare``): livestream
examples are compared to queries in the query domain. A store made with another model key is refused for new
corrections, and its examples are not used (``ExampleSet.note`` says so).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.errors import EngineError
from engine.geometry import Box
from engine.io.files import atomic_write
from engine.types import RegionRef

SOURCE = "livestream correction"  # RegionRef.source of a livestream example


class CorrectionError(EngineError):
    """A correction cannot be stored or removed (unknown product or id, another model key)."""


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

    def similarities(self, prepared: np.ndarray) -> dict[str, tuple[np.ndarray, list[RegionRef]]]:
        """For each product with examples: cosine matrix (queries x its examples) and those examples."""
        if not self.refs:
            return {}
        sims = np.asarray(prepared, np.float32) @ self.vectors.T
        return {pid: (sims[:, idx], [self.refs[i] for i in idx]) for pid, idx in self.by_product.items()}


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
            lines = self.log.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                entry = json.loads(line)
                if "add" in entry:
                    c = Correction.from_dict(entry["add"])
                    active[c.correction_id] = c
                elif "remove" in entry:
                    active.pop(str(entry["remove"]), None)
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
        return list(active.values())

    def add(self, product_id: str, clip: str, clip_sha256: str, frame_index: int, time_s: float,
            boxes: list[Box], vectors: np.ndarray, model_key: str, regions: str = "product",
            jpeg: bytes | None = None) -> Correction:
        """Store one corrected frame; refused when the store holds corrections made with another model key."""
        if len(boxes) == 0 or len(boxes) != len(vectors):
            raise CorrectionError("no region to store for this frame")
        others = sorted({c.model_key for c in self.records() if c.model_key != model_key})
        if others:
            raise CorrectionError(f"the livestream examples in {self.folder} were made with the model {others[0]!r}, "
                                  f"not {model_key!r}: remove them first (python -m engine corrections --clear) "
                                  "or switch back to that model")
        c = Correction(f"c{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}", product_id, clip, clip_sha256,
                       int(frame_index), round(float(time_s), 3), tuple(tuple(float(v) for v in b) for b in boxes),  # type: ignore[misc]
                       model_key, time.strftime("%Y-%m-%dT%H:%M:%S%z"), regions)
        with atomic_write(self.folder / f"{c.correction_id}.npy", binary=True) as f:
            np.save(f, np.asarray(vectors, np.float32), allow_pickle=False)
        if jpeg:
            with atomic_write(self.folder / f"{c.correction_id}.jpg", binary=True) as f:
                f.write(jpeg)
        self._append({"add": c.to_dict()})
        return c

    def remove(self, ids: list[str]) -> list[Correction]:
        """Remove corrections by id (all of them with ``["all"]``); an unknown id is refused, nothing removed."""
        active = {c.correction_id: c for c in self.records()}
        chosen = list(active) if ids == ["all"] else ids
        unknown = [i for i in chosen if i not in active]
        if unknown:
            raise CorrectionError(f"no livestream example {unknown[0]!r} (python -m engine corrections lists them)")
        for i in chosen:
            self._append({"remove": i})
            for suffix in (".npy", ".jpg"):
                (self.folder / f"{i}{suffix}").unlink(missing_ok=True)
        return [active[i] for i in chosen]

    def image_path(self, correction_id: str) -> Path:
        return self.folder / f"{correction_id}.jpg"

    def _append(self, entry: dict[str, Any]) -> None:
        """One line, appended under a lock and synced (a line is the unit of change)."""
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def load(self, model_key: str, products: dict[str, dict[str, Any]], dim: int,
             prepare: Callable[[np.ndarray], np.ndarray]) -> ExampleSet:
        """The examples usable with an index: same model key, a product it holds, readable vectors."""
        vectors, refs, skipped = [], [], {"model": 0, "product": 0, "file": 0}
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
