"""Running an evaluation from the app: progress bar, then the report saved where Inspect finds it."""

from __future__ import annotations

from pathlib import Path

from engine.catalog import load_catalogue
from engine.config import Settings
from engine.errors import CatalogueError
from engine.evaluate import EvalReport, evaluate

from .progress import describe_evaluation, run_with_progress
from .state import engine_settings, report_path_for


def run_evaluation(settings: Settings, dataset: str | Path) -> tuple[EvalReport, Path]:
    """Index the dataset, match each of its clips, save the report; returns it and where it was saved."""
    folder = Path(dataset).expanduser()
    catalogue = load_catalogue(folder)
    clips = [c for c in catalogue.clips.values() if c.path]
    if not clips:
        raise CatalogueError(f"{folder}: no clips to evaluate (expected videos in {folder / 'video'})")
    s = engine_settings(settings)
    report = run_with_progress(
        lambda progress: evaluate(str(folder.absolute()), s, progress=progress, catalogue=catalogue),
        describe_evaluation(len(clips)),
    )
    return report, report.save(report_path_for(settings, folder))
