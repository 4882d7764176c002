"""Settings chosen in the sidebar, and Streamlit's caches over engine.workspace (the one load-or-build).

* ``@st.cache_resource``: the Engine (models + memory-mapped index), shared by every session. It is keyed by the
  settings that change matching, the catalogue folder and the index build, so a rebuilt index is picked up on the
  next rerun without clearing anything by hand.
* ``@st.cache_data``: pure data only (the catalogue, index statistics, evaluation reports).
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from engine import workspace
from engine.config import Settings
from engine.errors import CatalogueError, EngineError
from engine.eval.evaluate import load_report as load_saved_report
from engine.index.store import IndexSummary
from engine.io.access import confine, editing_allowed, served_locally, within
from engine.io.catalogue import Catalogue, load_catalogue
from engine.pipeline.engine import Engine
from engine.types import EvalReport

from . import indexing
from .progress import describe_index_build, run_with_progress, staged

SETTINGS_KEY = "livematch.settings"
PENDING_CATALOGUE_KEY = "livematch.pending_catalogue"
PENDING_PREFIX = "livematch.pending."  # + a sidebar widget key: a value to apply before the widget is drawn
NOTICE_KEY = "catalogue.notice"
DISPLAY_ONLY_FIELDS = ("top_k",)  # settings that change what is shown, not what is computed
describe_demo = staged({"": (0.0, 1.0, "First start: generating the built-in demo (8 products, 5 livestream clips)…")})
_DEMOS_READY: set[Path] = set()  # built-in demo folders this process has prepared (checked without a bar since)


# --------------------------------------------------------------------------------------------- settings
def current_settings() -> Settings:
    """The settings of this session (set by the sidebar in app.py); the environment's defaults before that."""
    s = st.session_state.get(SETTINGS_KEY)
    return s if isinstance(s, Settings) else Settings.from_env()


def engine_settings(settings: Settings) -> Settings:
    """The settings with display-only fields reset, so that changing them never reloads or re-matches; and int8
    calibrated on what the operator chose (its calibration setting, else its catalogue, else the built-in demo),
    never on a catalogue a visitor opens: one quantisation per server, not one per catalogue."""
    from engine.io.demo import default_demo_dir

    defaults = Settings().flat()
    operator = operator_settings()
    calibration = operator.models.calibration or operator.paths.catalogue or str(default_demo_dir())
    return settings.with_(calibration=calibration, **{f: defaults[f] for f in DISPLAY_ONLY_FIELDS})


def settings_key(settings: Settings) -> str:
    """A stable text key of everything that changes a match."""
    return json.dumps(engine_settings(settings).flat(), sort_keys=True)


def request_catalogue(folder: str | Path) -> None:
    """Switch the sidebar's catalogue folder on the next run (a widget's value cannot change once it is drawn)."""
    st.session_state[PENDING_CATALOGUE_KEY] = str(folder)
    st.rerun()


# --------------------------------------------------------------------------------------------- access
def operator_settings() -> Settings:
    """The settings the operator gave the server (its environment), which a visitor cannot change."""
    return Settings.from_env()


def bind_address() -> str:
    """The address the Streamlit server listens on ("" when unset: every interface)."""
    try:
        return str(st.get_option("server.address") or "")
    except Exception:  # noqa: BLE001 - no server options (a bare script): treat as shared, the safe side
        return ""


def is_local_server() -> bool:
    """True while the server listens on this machine alone (``server.address`` in .streamlit/config.toml)."""
    return served_locally(bind_address())


def editing_enabled() -> bool:
    """Whether this app may add, remove, rebuild, correct and train (``LIVEMATCH_EDITING``, docs/security.md)."""
    return editing_allowed(operator_settings().access.editing, bind_address())


def allowed_folder(folder: str | Path) -> Path:
    """A folder typed by a visitor, resolved; CatalogueError when it lies outside the configured roots."""
    return confine(folder, workspace.app_catalogue_roots(operator_settings()))


def may_see(folder: str | Path) -> bool:
    """The one check of what a visitor may see: a catalogue, dataset, report or correction is shown only when its
    folder lies under the configured roots (``allowed_folder``), whichever page or query parameter asks."""
    return bool(str(folder or "").strip()) and within(folder, workspace.app_catalogue_roots(operator_settings()))


# --------------------------------------------------------------------------------------------- catalogue
def is_builtin_demo(settings: Settings) -> bool:
    return not settings.paths.catalogue.strip()


def catalogue_dir(settings: Settings) -> Path:
    """The configured catalogue folder (the built-in demo, generated on first use, when none is set). A folder
    typed in the sidebar is resolved and must lie under the configured roots (``allowed_folder``)."""
    if not is_builtin_demo(settings):
        root = allowed_folder(settings.paths.catalogue)
        if not root.is_dir():
            raise CatalogueError(f"catalogue folder not found: {settings.paths.catalogue}")
        return root
    try:
        root = _builtin_demo(settings)
    except (OSError, ValueError) as e:
        raise CatalogueError(f"the built-in demo could not be prepared: {e}") from e
    if not root.is_dir():
        raise CatalogueError(f"catalogue folder not found: {root}")
    return root.absolute()


def _builtin_demo(settings: Settings) -> Path:
    """The built-in demo folder. Its first generation (a few seconds, once per machine) shows a progress bar where
    it is asked for: the sidebar's catalogue line on a fresh start, from the first second."""
    from engine.io.demo import default_demo_dir

    if default_demo_dir() in _DEMOS_READY:  # only checked (regenerated if it was removed or is outdated)
        return workspace.catalogue_root(settings)
    root = run_with_progress(lambda _progress: workspace.catalogue_root(settings), describe_demo)
    _DEMOS_READY.add(default_demo_dir())
    return root


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
    """The catalogue in a folder (cached until products or clips are added or removed); CatalogueError when the
    folder lies outside the configured roots (``may_see``)."""
    allowed_folder(folder)
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
def index_summary(settings: Settings, catalogue_root: str | Path) -> IndexSummary | None:
    """Statistics of the catalogue's current index (from its sidecar, no model needed); None if none."""
    return workspace.index_summary(settings, catalogue_root)


def build_index(settings: Settings, catalogue: Catalogue) -> IndexSummary | None:
    """Embed the catalogue and publish a new index, with a progress bar; returns its statistics."""
    run_with_progress(lambda progress: workspace.build_index(engine_settings(settings), catalogue, progress),
                      describe_index_build)
    return index_summary(settings, catalogue.root)


def start_indexing(settings: Settings, catalogue: Catalogue) -> indexing.IndexJob | None:
    """Start building the catalogue's missing index in the background (ui.indexing): the build already running for
    its index folder, a new one, or None when the index exists."""
    s = engine_settings(settings)
    key = str(workspace.index_dir_for(catalogue.root, s))
    job = indexing.running(key)
    if job is None and index_summary(settings, catalogue.root) is not None:
        return None
    n_images = sum(len(p.images) for p in catalogue.products.values())
    return job or indexing.start(key, n_images, lambda progress: workspace.build_index(s, catalogue, progress))


def await_index(settings: Settings, catalogue: Catalogue) -> None:
    """Wait for the catalogue's index with a progress bar and an estimate, starting its build if need be."""
    job = start_indexing(settings, catalogue)
    if job is not None:
        indexing.wait(job, "the built-in demo" if is_builtin_demo(settings) else f"`{Path(catalogue.root).name}`")


def update_index(settings: Settings, catalogue: Catalogue, changed: list[str],
                 removed: list[str] = ()) -> IndexSummary | None:
    """After an edit: the milvus backend upserts or deletes only these products' rows, the others rebuild."""
    run_with_progress(lambda progress: workspace.update_index(engine_settings(settings), catalogue, changed,
                                                              list(removed), progress), describe_index_build)
    return index_summary(settings, catalogue.root)


# --------------------------------------------------------------------------------------------- engine
@st.cache_resource(show_spinner="Loading the models and the product index…", max_entries=4)
def _engine(key: str, catalogue_root: str, build: str) -> Engine:
    """The workspace's ready engine (models loaded, the current index memory-mapped), cached and shared by all
    sessions (thread-safe). ``build`` is part of the key so that a rebuilt index is picked up."""
    settings = Settings.from_flat(json.loads(key))
    engine = Engine(settings)
    engine.prepare()  # the models loaded and compiled now, side by side, rather than inside the first match
    return workspace.ready_engine(settings, catalogue_at(catalogue_root), engine=engine)


def get_engine(settings: Settings, catalogue: Catalogue) -> Engine:
    """The shared engine for these settings and this catalogue; a missing index is built first (or the build that
    opening the catalogue started is waited for), with progress."""
    await_index(settings, catalogue)
    return _engine(settings_key(settings), catalogue.root, _build_name(settings, catalogue))


def _build_name(settings: Settings, catalogue: Catalogue) -> str:
    summary = index_summary(settings, catalogue.root)
    return summary.build if summary else ""


def engine_key(settings: Settings, catalogue: Catalogue) -> str:
    """What a cached match depends on: settings, catalogue, index build and livestream examples (corrections)."""
    examples = workspace.corrections_store(engine_settings(settings), catalogue.root).signature()
    return f"{settings_key(settings)}|{catalogue.root}|{_build_name(settings, catalogue)}|{examples}"


# --------------------------------------------------------------------------------------------- reports
def list_reports(settings: Settings) -> list[Path]:
    """Saved evaluation reports whose dataset this visitor may see (``may_see``), newest first: a report that an
    operator's ``evaluate --dataset /elsewhere`` wrote in the same home is not listed."""
    folder = workspace.reports_dir(settings)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.json") if p.is_file() and not p.name.startswith(".")]
    return sorted((p for p in files if _visible_report(p)), key=lambda p: p.stat().st_mtime, reverse=True)


def _visible_report(path: Path) -> bool:
    try:
        return may_see(load_report(path).dataset)
    except EngineError:  # unreadable: listed, so that the page says so (it shows nothing of any dataset)
        return True


@st.cache_data(show_spinner=False, max_entries=8)
def _report(path: str, mtime: float) -> EvalReport:
    return load_saved_report(path)


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
    folder = workspace.models_dir(settings)
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
    return Engine(engine_settings(settings).with_(head="", garment_model=""))
