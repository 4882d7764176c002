"""Glue shared by the CLI and the app: which catalogue is configured, and an engine ready to match."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .catalog import Catalogue, load_catalogue
from .config import Settings, index_dir_for
from .errors import IndexFileError
from .index import ProductIndex
from .pipeline import Engine


def catalogue_root(settings: Settings) -> Path:
    """The configured catalogue folder; the built-in demo (generated on first use) when none is set."""
    if settings.catalogue:
        return Path(settings.catalogue)
    from .demo import default_demo_dir, generate_demo

    return generate_demo(default_demo_dir())


def ready_engine(
    settings: Settings,
    catalogue: Catalogue | None = None,
    progress: Callable[[str, float], None] | None = None,
    engine: Engine | None = None,
) -> Engine:
    """An engine with the catalogue's index loaded; the index is built when missing or unusable."""
    catalogue = catalogue or load_catalogue(catalogue_root(settings))
    engine = engine or Engine(settings)
    index_dir = index_dir_for(catalogue.root, settings)
    try:
        engine.index = ProductIndex.load(index_dir, engine.embedder.key)
    except IndexFileError:
        engine.build_index(catalogue, index_dir, progress or (lambda s, f: None))
    return engine
