"""The Milvus client: where the configured store is (``resolve_uri``), one shared connection per URI (``connect``),
and why a connection failed, in one line.

``LIVEMATCH_MILVUS_URI`` (read through engine.config.field_variable) names a server (``http://host:19530``) or
a Milvus Lite file; by default a Milvus Lite file under ``$LIVEMATCH_HOME/milvus/``. pymilvus is imported only when
a connection is made.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from engine.config import cache_home, field_variable, variable
from engine.errors import IndexFileError, IndexUnreachableError

_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


def timeout_s() -> float:
    """Seconds for connecting and every call (LIVEMATCH_MILVUS_TIMEOUT, default 10), read when it is used."""
    raw = variable("LIVEMATCH_MILVUS_TIMEOUT", "10")
    try:
        value = float(raw)
    except ValueError:
        raise IndexFileError(f"LIVEMATCH_MILVUS_TIMEOUT={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise IndexFileError(f"LIVEMATCH_MILVUS_TIMEOUT={raw!r} must be positive")
    return value


def resolve_uri(uri: str | None = None) -> str:
    """The configured URI: the argument, else ``LIVEMATCH_MILVUS_URI``, else a Milvus Lite file under the home."""
    uri = uri or field_variable("milvus_uri") or ""
    if uri:
        return uri
    path = cache_home() / "milvus" / "livematch.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def connect(uri: str) -> Any:
    """One shared client per URI; an unreachable server or a missing package is a one-line IndexFileError."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's C core logs keepalive GOAWAYs it recovers from
    try:
        from pymilvus import MilvusClient
    except ImportError as e:
        raise IndexFileError("the milvus backend needs pymilvus: pip install -r requirements-scale.txt") from e
    for name in ("pymilvus", "milvus_lite", "grpc._server"):  # they log every failure with a traceback; ours is one line
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with _LOCK:
        if uri not in _CLIENTS:
            try:
                _CLIENTS[uri] = MilvusClient(uri=uri, token=variable("LIVEMATCH_MILVUS_TOKEN"),
                                             timeout=timeout_s())
            except Exception as e:  # pymilvus raises MilvusException, grpc errors or ConnectionConfigException
                if "://" not in uri:
                    raise lite_error(uri, e) from e
                raise IndexUnreachableError(f"cannot reach Milvus at {uri}: {one_line(e)}") from e
        return _CLIENTS[uri]


def lite_held(uri: str) -> bool:
    """True when another process has the Milvus Lite store open (it holds a lock on ``<store>/LOCK``)."""
    import fcntl

    lock = Path(uri) / "LOCK"
    if not lock.is_file():
        return False
    try:
        with open(lock, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def lite_error(uri: str, e: BaseException) -> IndexUnreachableError:
    """Why a Milvus Lite store cannot be opened, in one line: another process holds it, or it is corrupt (then
    the commands that rebuild it; another build of the same store would fail the same way, so it is not retried)."""
    if lite_held(uri):
        return IndexUnreachableError(
            f"cannot open the Milvus Lite store {uri}: another process has it open (Milvus Lite serves one process at "
            "a time); stop the other one (the app?) or set LIVEMATCH_MILVUS_URI to a Milvus server")
    return IndexUnreachableError(
        f"the Milvus Lite store {uri} is corrupt ({one_line(e)}); rebuild it: mv {uri} {uri}.corrupt && "
        "python -m engine build-index --index-backend milvus (every catalogue indexed there is rebuilt on its next "
        "use)")


def ping(uri: str) -> None:
    """A round trip to the server (a cached client may outlive it): IndexUnreachableError when it does not answer."""
    client = connect(uri)
    try:
        client.list_collections(timeout=timeout_s())
    except Exception as e:  # noqa: BLE001 - transport and server errors alike
        with _LOCK:
            _CLIENTS.pop(uri, None)  # the next call connects again
        raise IndexUnreachableError(f"cannot reach Milvus at {uri}: {one_line(e)}") from e


def one_line(e: BaseException) -> str:
    text = str(getattr(e, "message", "") or e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
