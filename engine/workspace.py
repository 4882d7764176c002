"""The workspace: every path rule (indexes, reports, models, user copies) and the one load-or-build of an
engine. The command line and the app (through its cached wrappers in ui/state.py) both come here."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable

from engine.config import Settings
from engine.errors import IndexFileError, IndexUnreachableError
from engine.index.corrections import CorrectionStore
from engine.index.store import IndexSummary, indexed_products, moved_reason, read_summary
from engine.io.catalogue import Catalogue, load_catalogue
from engine.pipeline.engine import Engine

Progress = Callable[[str, float], None]
log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ paths
def catalogue_root(settings: Settings) -> Path:
    """The configured catalogue folder; the built-in demo (generated on first use) when none is set."""
    if settings.paths.catalogue:
        return Path(settings.paths.catalogue)
    from engine.io.demo import builtin_demo

    return builtin_demo()


def app_catalogue_roots(operator: Settings) -> list[Path]:
    """The folders under which the app may open a catalogue typed by a visitor (``engine.io.access.confine``): the
    built-in demo, the editable copies (<home>/catalogues), the operator's own catalogue (LIVEMATCH_CATALOGUE) and
    the folders listed in LIVEMATCH_CATALOGUE_ROOTS. ``operator`` holds the settings from the environment."""
    from engine.io.access import split_roots
    from engine.io.demo import default_demo_dir

    roots = [default_demo_dir(), user_copy_dir(operator).parent]
    if operator.paths.catalogue:
        roots.append(Path(operator.paths.catalogue))
    return roots + [Path(r) for r in split_roots(operator.access.catalogue_roots)]


def index_dir_for(catalogue: str | Path, settings: Settings) -> Path:
    """Where the index of a catalogue lives (<home>/index/...), unless ``paths.index_dir`` says otherwise.
    The folder is named by the catalogue's path, the embedder, the backend and the projection head."""
    if settings.paths.index_dir:
        return Path(settings.paths.index_dir)
    key = hashlib.sha1(str(Path(catalogue).resolve()).encode()).hexdigest()[:12]
    backend = "" if settings.index.index_backend == "annoy" else f"-{settings.index.index_backend}"
    if settings.models.head:
        backend += "-" + hashlib.sha1(str(Path(settings.models.head).resolve()).encode()).hexdigest()[:8]
    return settings.home / "index" / f"{Path(catalogue).name}-{key}-{settings.models.embedder}{backend}"


def corrections_store(settings: Settings, catalogue: str | Path) -> CorrectionStore:
    """The livestream examples (corrections) of a catalogue's index: beside its builds, so a rebuild keeps them."""
    return CorrectionStore(index_dir_for(catalogue, settings) / "corrections")


def report_path(settings: Settings, dataset: str | Path) -> Path:
    """Where the evaluation report of a data set is saved (read by the app's Evaluate and Inspect pages)."""
    return reports_dir(settings) / f"{Path(dataset).resolve().name}.json"


def learned_report_path(settings: Settings, dataset: str | Path) -> Path:
    """Where ``evaluate --compare --learned`` saves its comparison for a data set."""
    return reports_dir(settings) / "learned" / f"{Path(dataset).resolve().name}.json"


def reports_dir(settings: Settings) -> Path:
    return settings.home / "reports"


def models_dir(settings: Settings) -> Path:
    """Where trained checkpoints are versioned (garment-head-v001.pt, embedding-head-...)."""
    return settings.home / "models"


def user_copy_dir(settings: Settings) -> Path:
    """Where the editable copy of the built-in demo lives."""
    return settings.home / "catalogues" / "user"


# ------------------------------------------------------------------------------------------------ engines
def index_summary(settings: Settings, catalogue: str | Path) -> IndexSummary | None:
    """The catalogue's current index, from its sidecar (no model loaded); None when there is none."""
    return read_summary(index_dir_for(catalogue, settings))


def build_index(settings: Settings, catalogue: Catalogue, progress: Progress | None = None,
                engine: Engine | None = None, ray_address: str | None = None, ray_workers: int = 0) -> Engine:
    """Embed the catalogue and publish a new index; returns the engine with it loaded. With ``ray_address``
    ("local" or a cluster's address) the images are embedded on Ray (engine.index.ray_build)."""
    engine = engine or Engine(settings)
    engine.build_index(catalogue, index_dir_for(catalogue.root, settings), progress or (lambda s, f: None),
                       ray_address, ray_workers)
    return engine


def update_index(settings: Settings, catalogue: Catalogue, changed: list[str], removed: list[str] = (),
                 progress: Progress | None = None) -> Engine:
    """After products were added, edited or removed: with the milvus backend and a usable index, upsert and delete
    only their rows; otherwise rebuild (only new images are embedded, the rest come from the cache)."""
    engine = Engine(settings)
    index_dir = index_dir_for(catalogue.root, settings)
    moved = moved_reason(index_dir, settings.index)
    if moved:
        log.warning("%s", moved)
    if settings.index.index_backend == "milvus" and read_summary(index_dir) is not None and not moved:
        # reconcile too: products an earlier, failed update left behind in the index or out of it
        indexed = indexed_products(index_dir)
        removed = sorted(set(removed) | (indexed - set(catalogue.products)))
        changed = sorted(set(changed) | (set(catalogue.products) - indexed))
        try:
            engine.update_index(catalogue, index_dir, changed, removed, progress or (lambda s, f: None))
            return engine
        except IndexUnreachableError:  # reported: a rebuild would not reach the server either
            raise
        except IndexFileError:
            pass
    return build_index(settings, catalogue, progress, engine)


def ready_engine(settings: Settings, catalogue: Catalogue | None = None, progress: Progress | None = None,
                 engine: Engine | None = None) -> Engine:
    """An engine with the catalogue's index loaded; the index is built when missing or unusable (corrupt,
    or made by another model). The only load-or-build: the CLI calls it, the app caches it."""
    catalogue = catalogue or load_catalogue(catalogue_root(settings))
    engine = engine or Engine(settings)
    moved = moved_reason(index_dir_for(catalogue.root, settings), settings.index)
    if moved:  # said, then built where the settings point (an unreachable server says so then)
        log.warning("%s", moved)
        build_index(settings, catalogue, progress, engine)
        return engine
    try:
        engine.load_index(index_dir_for(catalogue.root, settings))
    except IndexUnreachableError:  # a rebuild would not reach the server either
        raise
    except IndexFileError:
        build_index(settings, catalogue, progress, engine)
    return engine
