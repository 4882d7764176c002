"""Models kept as OpenVINO IR: a model that is slow to make (a converted TensorFlow graph, an NNCF quantisation) is
made once and kept under ``<LIVEMATCH_HOME>/openvino-ir``, with the SHA-256 of its files, and read from there next
time (``kept_ir``, ``converted_ir``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.config import cache_home
from engine.errors import ModelError
from engine.io.files import file_digest
from engine.models.openvino_rt import shared_core

IR_FORMAT = "kept-ir-f32/v2"  # bump to make every kept IR again
IR_MANIFEST = "manifest.json"


def ir_cache_dir() -> Path:
    """Where models kept as OpenVINO IR are: ``<LIVEMATCH_HOME>/openvino-ir`` (the converted detector graph, the
    int8-quantised embedder backbones)."""
    return cache_home() / "openvino-ir"


@dataclass(frozen=True)
class ConvertedModel:
    """A model read through its kept IR (``kept_ir``): the model, the key it was kept under (a converted file: the
    file's SHA-256), where its IR is (``path``; missing when it could not be kept), what the cache did ("read";
    "converted"; "discarded (why), converted") and the SHA-256 of its kept weights ("" when not kept by this call)."""

    model: Any  # openvino.Model
    key: str
    path: Path
    event: str
    weights: str = ""


def _read_ir(folder: Path, key: str):  # -> (openvino.Model, the weights' SHA-256)
    """The IR in ``folder`` when its manifest names this key and format and its files' SHA-256 match, and the SHA-256
    of its weights; raises otherwise."""
    manifest = json.loads((folder / IR_MANIFEST).read_text())
    if manifest.get("format") != IR_FORMAT or manifest.get("key") != key:
        raise ValueError("another key or format")
    for name in ("model.xml", "model.bin"):
        if file_digest(folder / name) != manifest.get(name):
            raise ValueError(f"{name}: digest mismatch")
    return shared_core().read_model(str(folder / "model.xml")), manifest["model.bin"]


def _write_ir(model, folder: Path, key: str) -> str:
    """Save ``model`` as f32 IR into ``folder`` with its manifest: written in a temporary folder beside it, renamed
    into place at once (a half-written IR is never seen under its name; a concurrent writer's wins); returns the
    SHA-256 of the weights written."""
    import openvino as ov

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)  # the default would halve the weights
        manifest = {"format": IR_FORMAT, "key": key,
                    **{name: file_digest(tmp / name) for name in ("model.xml", "model.bin")}}
        (tmp / IR_MANIFEST).write_text(json.dumps(manifest, indent=1))
        os.rename(tmp, folder)  # fails when another process put its IR there first: keep that one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest["model.bin"]


def kept_ir(stem: str, key: str, make: Callable[[], Any]) -> ConvertedModel:
    """The model ``make()`` builds (slowly: a conversion, a quantisation), kept as OpenVINO IR (f32 weights) in
    ``ir_cache_dir()/<stem>-<key[:16]>`` and read from there next time. A kept IR is read only when its manifest
    names this key and ``IR_FORMAT`` and its files' SHA-256 match (OpenVINO reads damaged weights without a word);
    else it is deleted and made again. Keeping it is best effort (a read-only home makes it in each process; ``path``
    is then missing); IRs of other keys under the same stem are deleted."""
    folder = kept_ir_folder(stem, key)
    path, why, weights = folder / "model.xml", "", ""
    if folder.exists():
        try:
            model, weights = _read_ir(folder, key)
            return ConvertedModel(model, key, path, "read", weights)
        except Exception as e:  # noqa: BLE001 - any failure: make it afresh
            why = f"discarded ({type(e).__name__}), "
            shutil.rmtree(folder, ignore_errors=True)
    model = make()
    with contextlib.suppress(Exception):  # noqa: BLE001 - a full disk or a read-only home: not kept
        weights = _write_ir(model, folder, key)
        for old in folder.parent.glob(f"{stem}-" + "?" * 16):
            if old.is_dir() and old.name != folder.name:
                shutil.rmtree(old, ignore_errors=True)
    return ConvertedModel(model, key, path, why + "converted", weights)


def kept_ir_folder(stem: str, key: str) -> Path:
    """Where ``kept_ir`` keeps the IR of ``stem`` made under ``key``."""
    return ir_cache_dir() / f"{stem}-{key[:16]}"


def converted_ir(source: Path, stem: str) -> ConvertedModel:
    """A model file that OpenVINO reads slowly (a TensorFlow frozen graph, many times slower than its IR:
    docs/detector-openvino.md) read from its IR, converted once and kept by ``kept_ir`` under the file's SHA-256."""
    source = Path(source)

    def read():  # -> openvino.Model
        try:
            return shared_core().read_model(str(source))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
            raise ModelError(f"OpenVINO cannot read {source.name} ({type(e).__name__})") from e

    return kept_ir(stem, file_digest(source), read)
