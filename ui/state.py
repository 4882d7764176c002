"""Settings chosen in the sidebar, and the one place that loads catalogues, indexes and models.

* ``@st.cache_resource``: the Engine (models + memory-mapped index), shared by every session. It is keyed by the
  settings that change matching, the catalogue folder and the index build, so a rebuilt index is picked up on the
  next rerun without clearing anything by hand.
* ``@st.cache_data``: pure data only (the catalogue, index statistics, evaluation reports).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import streamlit as st

from engine.catalog import Catalogue, load_catalogue
from engine.config import Settings, index_dir_for
from engine.errors import CatalogueError, IndexFileError
from engine.evaluate import EvalReport
from engine.index import current_build
from engine.pipeline import Engine

from .progress import describe_index_build, run_with_progress

SETTINGS_KEY = "livematch.settings"
PENDING_CATALOGUE_KEY = "livematch.pending_catalogue"
PENDING_PREFIX = "livematch.pending."  # + a sidebar widget key: a value to apply before the widget is drawn
NOTICE_KEY = "catalogue.notice"
DISPLAY_ONLY_FIELDS = ("top_k",)  # settings that change what is shown, not what is computed


# --------------------------------------------------------------------------------------------- settings
def current_settings() -> Settings:
    """The settings of this session (set by the sidebar in app.py); the environment's defaults before that."""
    s = st.session_state.get(SETTINGS_KEY)
    return s if isinstance(s, Settings) else Settings.from_env()


def engine_settings(settings: Settings) -> Settings:
    """The settings with display-only fields reset, so that changing them never reloads or re-matches."""
    defaults = Settings()
    return replace(settings, **{f: getattr(defaults, f) for f in DISPLAY_ONLY_FIELDS})


def settings_key(settings: Settings) -> str:
    """A stable text key of everything that changes a match."""
    return json.dumps(asdict(engine_settings(settings)), sort_keys=True)


def request_catalogue(folder: str | Path) -> None:
    """Switch the sidebar's catalogue folder on the next run (a widget's value cannot change once it is drawn)."""
    st.session_state[PENDING_CATALOGUE_KEY] = str(folder)
    st.rerun()


# --------------------------------------------------------------------------------------------- catalogue
def is_builtin_demo(settings: Settings) -> bool:
    return not settings.catalogue.strip()


def catalogue_dir(settings: Settings) -> Path:
    """The configured catalogue folder (the built-in demo, generated on first use, when none is set)."""
    from engine.workspace import catalogue_root

    try:
        root = catalogue_root(settings)
    except (OSError, ValueError) as e:
        raise CatalogueError(f"the built-in demo could not be prepared: {e}") from e
    if not root.is_dir():
        raise CatalogueError(f"catalogue folder not found: {root}")
    return root.absolute()


def _signature(root: Path) -> tuple[float, ...]:
    """Modification times that change when products or clips are added or removed."""
    out = []
    for p in (root, root / "image", root / "image_annotation", root / "video", root / "products.json"):
        try:
            out.append(p.stat().st_mtime)
        except OSError:
            out.append(0.0)
    return tuple(out)


@st.cache_data(show_spinner=False, max_entries=8)
def _catalogue(root: str, signature: tuple[float, ...]) -> Catalogue:
    return load_catalogue(root)


def catalogue_at(folder: str | Path) -> Catalogue:
    """The catalogue in a folder (cached until products or clips are added or removed)."""
    root = Path(folder).expanduser().absolute()
    if not root.is_dir():
        raise CatalogueError(f"catalogue folder not found: {root}")
    return _catalogue(str(root), _signature(root))


def get_catalogue(settings: Settings) -> Catalogue:
    """The catalogue configured in the sidebar."""
    return catalogue_at(catalogue_dir(settings))


def forget_catalogue() -> None:
    """Drop cached catalogues after an edit made by this process."""
    _catalogue.clear()


# --------------------------------------------------------------------------------------------- index
def index_dir(settings: Settings, catalogue_root: str | Path) -> Path:
    return index_dir_for(catalogue_root, settings)


@st.cache_data(show_spinner=False, max_entries=32)
def _index_summary(build: str) -> dict | None:
    try:
        meta = json.loads((Path(build) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    keep = ("model_key", "dim", "n_items", "n_products", "n_trees", "built_at", "build_seconds", "embedder",
            "detector", "cache", "problems")
    summary = {k: meta.get(k) for k in keep}
    summary["build"] = Path(build).name
    return summary


def index_summary(settings: Settings, catalogue_root: str | Path) -> dict | None:
    """Statistics of the catalogue's current index (read from its sidecar, no model needed); None if none."""
    build = current_build(index_dir(settings, catalogue_root))
    return _index_summary(str(build)) if build is not None else None


def build_index(settings: Settings, catalogue: Catalogue) -> dict | None:
    """Embed the catalogue and publish a new index, with a progress bar; returns its statistics."""
    target = index_dir(settings, catalogue.root)
    engine = Engine(engine_settings(settings))
    run_with_progress(lambda progress: engine.build_index(catalogue, target, progress), describe_index_build)
    return index_summary(settings, catalogue.root)


# --------------------------------------------------------------------------------------------- engine
@st.cache_resource(show_spinner="Loading the models and the product index…", max_entries=4)
def _engine(key: str, catalogue_root: str, build: str) -> Engine:
    """A ready engine: models loaded, the current index memory-mapped. Shared by all sessions (thread-safe)."""
    settings = Settings(**json.loads(key))
    engine = Engine(settings)
    engine.load_index(index_dir_for(catalogue_root, settings))
    _ = engine.detector  # load now rather than inside the first match
    return engine


def get_engine(settings: Settings, catalogue: Catalogue) -> Engine:
    """The shared engine for these settings and this catalogue; the index is built first when missing or stale."""
    target = index_dir(settings, catalogue.root)
    build = current_build(target)
    if build is None:
        build_index(settings, catalogue)
        build = current_build(target)
    try:
        return _engine(settings_key(settings), catalogue.root, build.name if build else "")
    except IndexFileError:  # corrupt, or made by another model version: rebuild once
        build_index(settings, catalogue)
        build = current_build(target)
        return _engine(settings_key(settings), catalogue.root, build.name if build else "")


def engine_key(settings: Settings, catalogue: Catalogue) -> str:
    """What a cached match depends on: settings, catalogue and index build."""
    build = current_build(index_dir(settings, catalogue.root))
    return f"{settings_key(settings)}|{catalogue.root}|{build.name if build else ''}"


# --------------------------------------------------------------------------------------------- reports
def reports_dir(settings: Settings) -> Path:
    return settings.home / "reports"


def report_path_for(settings: Settings, dataset: str | Path) -> Path:
    """Where the report of a dataset is saved (the CLI's convention)."""
    return reports_dir(settings) / f"{Path(dataset).resolve().name}.json"


def list_reports(settings: Settings) -> list[Path]:
    """Saved evaluation reports, newest first."""
    folder = reports_dir(settings)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.json") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


@st.cache_data(show_spinner=False, max_entries=8)
def _report(path: str, mtime: float) -> EvalReport:
    return EvalReport.load(path)


def load_report(path: str | Path) -> EvalReport:
    """A saved report (EngineError when it is unreadable)."""
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError as e:
        raise CatalogueError(f"{p.name}: report not found") from e
    return _report(str(p), mtime)


# --------------------------------------------------------------------------------------------- trained heads
@st.cache_data(show_spinner=False, max_entries=16)
def _checkpoints(folder: str, kind: str, signature: tuple) -> list[tuple[str, str]]:
    from engine.models.heads import list_checkpoints

    out = []
    for path, meta in list_checkpoints(folder, kind):
        n = len(meta.get("products", []))
        detail = meta.get("mode", "") if kind == "projection-head" else f"{len(meta.get('classes', [])) - 1} classes"
        out.append((str(path), f"{path.stem} · {detail} · {n} products".replace(" ·  ·", " ·")))
    return out


def trained_checkpoints(settings: Settings, kind: str) -> list[tuple[str, str]]:
    """(path, label) of the trained checkpoints of ``kind`` in <home>/models (train-embedding, train-garments)."""
    folder = settings.home / "models"
    files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    signature = tuple((f.name, f.stat().st_mtime) for f in files)
    return _checkpoints(str(folder), kind, signature)


def request_checkpoint(widget_key: str, path: str, notice: str) -> None:
    """Select a freshly trained checkpoint in the sidebar on the next run, with a notice on the page."""
    st.session_state[PENDING_PREFIX + widget_key] = str(path)
    st.session_state[NOTICE_KEY] = notice
    _checkpoints.clear()
    st.rerun()


def get_engine_models(settings: Settings) -> Engine:
    """An engine with this session's detector and backbone (no head, no index): what training needs.
    Its models come from the process-wide registry, so nothing is loaded twice."""
    return Engine(replace(engine_settings(settings), head="", garment_model=""))
