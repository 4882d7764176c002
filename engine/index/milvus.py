"""The Milvus backend: region vectors in a Milvus collection, searched (and filtered by shop or category) there.

By default Milvus Lite, embedded, keeps its data in one file under ``$LIVEMATCH_HOME/milvus/``; with
``LIVEMATCH_MILVUS_URI=http://host:19530`` (and ``LIVEMATCH_MILVUS_TOKEN`` when the server wants one) the same
code talks to a Milvus server. pymilvus is imported only when this backend is used.

Each build writes a fresh collection ``lm_<catalogue and model>_<build>``; the index folder's CURRENT file (see
engine.index.store) then names the build that serves, so a half-written collection is never searched. The build
folder keeps ``milvus.json`` (where the collection is) beside the usual sidecar and ``vectors.npy``: the exact
re-ranking reads a product's region vectors from that local copy, not from the server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import IndexFileError, IndexUnreachableError
from engine.index.milvus_client import connect, one_line, resolve_uri
from engine.index.protocol import IndexBackend, IndexSpec
from engine.types import RegionRef

BATCH = 2000  # rows per insert
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MilvusTarget:
    """Where a build's vectors live: the server (or Milvus Lite file) and the collection."""

    uri: str
    collection: str


def drop_stale_builds(uri: str, index_dir: Path, model_key: str) -> list[str]:
    """Drop this index folder's collections that no published build names: those of builds that never finished (a
    killed build-index leaves its ``..._building_...`` collection). Called under the folder's build lock, so none
    of them is being written. Returns their names."""
    prefix = collection_name(index_dir, model_key, "")
    used = set()
    for f in Path(index_dir, "builds").glob("[!.]*/" + MilvusBackend.filename):
        try:
            used.add(read_target(f).collection)
        except IndexFileError:
            continue
    client = connect(uri)
    try:
        stale = [c for c in client.list_collections()
                 if c.startswith(prefix) and "_building_" in c[len(prefix):] and c not in used]
    except Exception as e:  # noqa: BLE001 - a listing failure leaves them for the next build
        log.debug("cannot list Milvus collections at %s: %s", uri, one_line(e))
        return []
    for name in stale:
        drop(MilvusTarget(uri, name))
    return stale


def collection_name(index_dir: Path, model_key: str, build_tag: str) -> str:
    """``lm_<catalogue and model>_<build>``: letters, digits and underscores, as Milvus requires."""
    ident = hashlib.sha1(f"{Path(index_dir).resolve()}|{model_key}".encode()).hexdigest()[:12]
    return f"lm_{ident}_" + re.sub(r"[^A-Za-z0-9_]", "_", build_tag)[-24:]


def shop_filter(shop: str | None = None, category: str | None = None) -> str:
    """A Milvus boolean expression for the rows of one shop and/or one category ("" when neither)."""
    parts = [f"{field} == {json.dumps(value, ensure_ascii=False)}"
             for field, value in (("shop", shop), ("category", category)) if value]
    return " and ".join(parts)


def _schema(client: Any, dim: int) -> Any:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)  # the region's position in the sidecar's items
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("product", DataType.VARCHAR, max_length=512)
    schema.add_field("image", DataType.VARCHAR, max_length=4096)
    schema.add_field("box", DataType.JSON)
    schema.add_field("category", DataType.VARCHAR, max_length=256)
    schema.add_field("shop", DataType.VARCHAR, max_length=512)
    return schema


def rows(vectors: np.ndarray, items: list[RegionRef], products: dict[str, dict[str, Any]], first_id: int = 0) -> list[dict]:
    """One Milvus row per region: its vector and what RegionRef holds, plus the product's shop."""
    unit = _unit(vectors)
    return [{"id": first_id + i, "vector": v.tolist(), "product": it.product_id,
             "image": it.image_path, "box": [float(b) for b in it.box], "category": it.category or "",
             "shop": str((products.get(it.product_id) or {}).get("shop") or "")}
            for i, (v, it) in enumerate(zip(unit, items))]


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so inner product is cosine (as Annoy's angular distance is)."""
    v = np.asarray(vectors, np.float32).reshape(-1, np.shape(vectors)[-1])
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def create_collection(target: MilvusTarget, dim: int, model_key: str) -> Any:
    client = connect(target.uri)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
    try:
        if client.has_collection(target.collection):
            client.drop_collection(target.collection)
        client.create_collection(target.collection, schema=_schema(client, dim), index_params=index,
                                 properties={"livematch.model_key": model_key, "livematch.dim": str(dim)})
    except Exception as e:
        raise IndexFileError(f"Milvus at {target.uri} refused the collection: {one_line(e)}") from e
    return client


def upsert(target: MilvusTarget, batch_rows: list[dict]) -> None:
    client = connect(target.uri)
    try:
        for start in range(0, len(batch_rows), BATCH):
            client.upsert(target.collection, batch_rows[start : start + BATCH])
    except Exception as e:
        raise IndexFileError(f"writing to Milvus at {target.uri} failed: {one_line(e)}") from e


def delete_ids(target: MilvusTarget, ids: list[int]) -> None:
    if ids:
        try:
            connect(target.uri).delete(target.collection, ids=[int(i) for i in ids])
        except Exception as e:
            raise IndexFileError(f"deleting from Milvus at {target.uri} failed: {one_line(e)}") from e


def drop(target: MilvusTarget) -> None:
    """Drop a collection no build uses any more. Best effort: it runs while a failed build is cleaned up or an old
    one pruned, which must go on, so a failure (an unreachable server, ...) is logged as a warning naming the
    collection left on the server, and not raised."""
    try:
        client = connect(target.uri)
        if client.has_collection(target.collection):
            client.drop_collection(target.collection)
    except Exception as e:  # IndexFileError from connect, or the client's own errors
        logging.getLogger(__name__).warning("could not drop Milvus collection %s at %s (%s); it stays on the server",
                                            target.collection, target.uri, one_line(e))


def read_target(path: Path) -> MilvusTarget:
    try:
        return MilvusTarget(**json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as e:
        raise IndexFileError(f"{Path(path).name} is unreadable ({type(e).__name__}): rebuild the index") from e


def write_target(path: Path, target: MilvusTarget) -> None:
    Path(path).write_text(json.dumps(asdict(target)), encoding="utf-8")


class MilvusBackend:
    """A loaded Milvus collection, checked against the sidecar's model key and dimension."""

    name = "milvus"
    filename = "milvus.json"

    @classmethod
    def open(cls, path: Path, dim: int, model_key: str | None = None) -> IndexBackend:
        return cls(path, dim, model_key)

    def __init__(self, path: Path, dim: int, model_key: str | None = None) -> None:
        self.target = read_target(path)
        self._client = connect(self.target.uri)
        try:
            found = self._client.has_collection(self.target.collection)
            info = self._client.describe_collection(self.target.collection) if found else {}
        except Exception as e:
            raise IndexUnreachableError(f"cannot read from Milvus at {self.target.uri}: {one_line(e)}") from e
        if not found:
            raise IndexFileError(f"the Milvus collection {self.target.collection} is missing: rebuild the index")
        try:
            self._client.load_collection(self.target.collection)  # a new process finds it released
        except Exception as e:
            raise IndexUnreachableError(f"Milvus at {self.target.uri} cannot load the collection: {one_line(e)}") from e
        props = info.get("properties") or {}
        vec = next((f for f in info.get("fields", []) if f.get("name") == "vector"), {})
        got = int((vec.get("params") or {}).get("dim", 0))
        if got != dim:
            raise IndexFileError(f"the Milvus collection {self.target.collection} has dimension {got}, "
                                 f"expected {dim}: rebuild the index")
        if model_key is not None and props.get("livematch.model_key") != model_key:
            raise IndexFileError(f"the Milvus collection was built with {props.get('livematch.model_key')!r}, "
                                 f"not {model_key!r}: rebuild the index")
        self._check_rows(Path(path).parent / "meta.json")

    def _check_rows(self, sidecar: Path) -> None:
        """IndexFileError (the callers rebuild) when the collection holds fewer rows than the build indexed: a
        damaged Milvus Lite store falls back to an older, emptier state and would answer every search with nothing."""
        try:
            expected = int(json.loads(sidecar.read_text(encoding="utf-8")).get("n_items", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            return
        try:
            got = self._client.query(self.target.collection, filter="", output_fields=["count(*)"])
            count = int(got[0]["count(*)"]) if got else 0
        except Exception as e:  # noqa: BLE001 - an older server without count(*): nothing to compare
            log.debug("cannot count the rows of %s: %s", self.target.collection, one_line(e))
            return
        if count < expected:
            message = (f"the Milvus collection {self.target.collection} at {self.target.uri} holds {count} of the "
                       f"{expected} regions of its build: the store is damaged; rebuilding the index")
            log.warning("%s", message)
            raise IndexFileError(message)

    @staticmethod
    def build(vectors: np.ndarray, path: Path, spec: IndexSpec, index_dir: Path) -> None:
        """Write every region into a new collection named for this build; ``path`` records where it is."""
        target = MilvusTarget(resolve_uri(spec.uri), collection_name(index_dir, spec.model_key, Path(path).parent.name))
        dropped = drop_stale_builds(target.uri, index_dir, spec.model_key)
        if dropped:
            log.warning("dropped %d Milvus collection(s) left by an unfinished build: %s", len(dropped),
                        ", ".join(dropped))
        create_collection(target, int(vectors.shape[1]), spec.model_key)
        try:
            upsert(target, rows(vectors, spec.items, spec.products))
            write_target(path, target)
        except BaseException:
            drop(target)
            raise

    def search(self, vector: np.ndarray, k: int, search_k: int = -1, expr: str = "") -> tuple[list[int], list[float]]:
        try:
            hits = self._client.search(self.target.collection, [_unit(vector)[0].tolist()], limit=k,
                                       filter=expr, search_params={"metric_type": "IP"}, output_fields=["id"])
        except Exception as e:
            raise IndexFileError(f"Milvus search at {self.target.uri} failed: {one_line(e)}") from e
        found = hits[0] if hits else []
        return [int(h["id"]) for h in found], [float(h["distance"]) for h in found]

    def search_filtered(self, vector: np.ndarray, k: int, search_k: int = -1, shop: str | None = None,
                        category: str | None = None) -> tuple[list[int], list[float]]:
        """``search`` among the regions of one shop's products and/or of one category only."""
        return self.search(vector, k, search_k, expr=shop_filter(shop, category))

    @staticmethod
    def moved(path: Path, uri: str | None) -> str:
        """Why the build whose target is recorded at ``path`` cannot serve because the configured ``uri``
        (LIVEMATCH_MILVUS_URI) now names another server or Milvus Lite store than the one it was built in."""
        try:
            served = read_target(path).uri
        except IndexFileError:
            return ""
        configured = resolve_uri(uri)
        if same_uri(served, configured):
            return ""
        return (f"the index was built in Milvus at {served}, but LIVEMATCH_MILVUS_URI now names {configured}: "
                "building it there")


def same_uri(a: str, b: str) -> bool:
    """Whether two Milvus URIs name the same server (URLs) or the same Milvus Lite file (paths)."""
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def release(old_build: Path, kept_builds: list[Path]) -> None:
    """Drop the collection of a pruned build unless a kept build (an incremental update of it) still uses it."""
    old = old_build / MilvusBackend.filename
    if not old.is_file():
        return
    try:
        target = read_target(old)
    except IndexFileError:
        return
    for kept in kept_builds:
        f = kept / MilvusBackend.filename
        if f.is_file() and f.read_text(encoding="utf-8", errors="replace") == old.read_text(encoding="utf-8"):
            return
    drop(target)
