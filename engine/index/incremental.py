"""Incremental updates of a Milvus-backed index: a product's rows are upserted or deleted, the rest stay.

An update writes a new build folder that points at the same collection (its sidecar lists the regions, old ones
first, new ones appended with fresh ids, removed ones in ``deleted``) and publishes it through CURRENT like a full
build. The order keeps every moment consistent: new rows are upserted first (the serving build ignores ids past its
own items), then CURRENT switches, then the removed rows are deleted (the new build already ignores them). A full
build compacts the ids again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import IndexFileError
from engine.index import milvus
from engine.index.store import build_lock, current_build, prune_builds, publish_build
from engine.io.files import file_digest
from engine.models.domain import l2_normalise
from engine.types import RegionRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductUpdate:
    """What changes: products added or changed (their regions, raw embeddings and sidecar entries) and removed."""

    vectors: np.ndarray  # raw (uncentred) embeddings of the changed products' regions
    items: list[RegionRef]
    products: dict[str, dict[str, Any]]  # the changed products' sidecar entries (name, category, shop, images)
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateSummary:
    build: Path
    upserted: int
    deleted: int


def update_index(index_dir: str | Path, update: ProductUpdate, model_key: str) -> UpdateSummary:
    """Apply ``update`` to the current Milvus build without touching the other products' rows."""
    index_dir = Path(index_dir)
    with build_lock(index_dir):
        build = current_build(index_dir)
        if build is None:
            raise IndexFileError(f"no index in {index_dir}: build one first (python -m engine build-index)")
        meta = json.loads((build / "meta.json").read_text(encoding="utf-8"))
        if meta.get("backend") != "milvus":
            raise IndexFileError("incremental updates need the milvus backend: rebuild the index instead")
        if meta.get("model_key") != model_key:
            raise IndexFileError(f"the index was built with {meta.get('model_key')!r}, not {model_key!r}: rebuild it")
        return _apply(index_dir, build, meta, update)


def _apply(index_dir: Path, build: Path, meta: dict[str, Any], update: ProductUpdate) -> UpdateSummary:
    target = milvus.read_target(build / milvus.MilvusBackend.filename)
    gone = set(update.removed) | set(update.products)
    old_deleted = set(meta.get("deleted", []))
    newly_deleted = sorted(i for i, it in enumerate(meta["items"]) if it[0] in gone and i not in old_deleted)
    vectors = np.asarray(update.vectors, np.float32).reshape(-1, int(meta["dim"]))
    if meta.get("centred"):
        vectors = l2_normalise(vectors - np.load(build / "catalogue_mean.npy", allow_pickle=False))
    first = len(meta["items"])
    products = {k: v for k, v in meta["products"].items() if k not in gone} | dict(update.products)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=index_dir / "builds"))
    try:
        for name in ("catalogue_mean.npy", "query_mean.npy", milvus.MilvusBackend.filename):
            if (build / name).is_file():
                shutil.copy2(build / name, tmp / name)
        old = np.load(build / "vectors.npy", allow_pickle=False)
        np.save(tmp / "vectors.npy", np.concatenate([old, vectors]).astype(np.float32), allow_pickle=False)
        items = meta["items"] + [[it.product_id, it.image_path, list(it.box), it.category, it.source]
                                 for it in update.items]
        deleted = sorted(old_deleted | set(newly_deleted))
        meta = {**meta, "items": items, "products": products, "deleted": deleted,
                "n_items": len(items) - len(deleted), "n_products": len(products),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "incremental": True,
                "checksum": {n: file_digest(tmp / n) for n in meta.get("checksum", {}) if (tmp / n).is_file()}}
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        milvus.upsert(target, milvus.rows(vectors, list(update.items), products, first_id=first))
        name = time.strftime("%Y%m%d-%H%M%S-") + tmp.name[-6:]
        os.replace(tmp, index_dir / "builds" / name)
        tmp = index_dir / "builds" / name
        publish_build(index_dir, name)
    except BaseException:
        if current_build(index_dir) != tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:  # the update is live already: the published build ignores these rows, so a failed delete only leaves them
        milvus.delete_ids(target, newly_deleted)
    except IndexFileError as e:
        log.warning("the update is published, but %d removed rows stay in Milvus until the next full build: %s",
                    len(newly_deleted), e)
    prune_builds(index_dir, keep=2)
    return UpdateSummary(tmp, len(update.items), len(newly_deleted))
