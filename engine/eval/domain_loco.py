"""Domain centring measured without leakage (``python -m engine evaluate --leave-clip-out-mean``): each clip is
matched with a livestream mean computed from the OTHER clips of the data set only (the same statistic and
regions as ``python -m engine domain-mean``), so no clip is centred on a mean it took part in."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import Settings
from engine.errors import EngineError
from engine.eval.evaluate import make_report, match_outcome, region_retrieval
from engine.io.catalogue import load_catalogue
from engine.models.domain import robust_mean
from engine.pipeline.engine import Engine
from engine.training.domain import region_vectors
from engine.types import ClipOutcome, EvalReport, RegionOutcome
from engine.workspace import index_dir_for

Progress = Callable[[str, float], None]


def evaluate_leave_clip_out(dataset: str | Path, settings: Settings, progress: Progress | None = None) -> EvalReport:
    progress = progress or (lambda stage, f: None)
    catalogue = load_catalogue(dataset)
    engine = Engine(settings.with_(use_examples=False))  # no livestream examples: they may come from these clips
    if engine.domain_mean is None:
        raise EngineError("--leave-clip-out-mean needs domain centring: this embedder has no livestream mean")
    engine.build_index(catalogue, index_dir_for(catalogue.root, settings), lambda s, f: progress(f"index: {s}", f))
    index = engine.index
    assert index is not None
    clips = [c for c in catalogue.clips.values() if c.path]
    if len(clips) < 2:
        raise EngineError(f"{dataset}: leaving a clip out needs at least two clips")
    per_clip = region_vectors(engine, [str(c.path) for c in clips], lambda s, f: progress(f"regions of {s}", f))
    outcomes: list[ClipOutcome] = []
    regions: list[RegionOutcome] = []
    skipped = [f"{c.video_id}: video missing" for c in catalogue.clips.values() if not c.path]
    for n, clip in enumerate(clips):
        progress(f"match {clip.video_id}", n / len(clips))
        others = [v for k, v in enumerate(per_clip) if k != n and len(v)]
        index.query_mean = robust_mean(np.concatenate(others))  # this clip's regions take no part in its mean
        outcome = match_outcome(engine, clip)
        outcomes.append(outcome) if isinstance(outcome, ClipOutcome) else skipped.append(outcome)
        if clip.truth in index.products:
            regions += region_retrieval(engine, [clip])
    progress("done", 1.0)
    return make_report(dataset, settings, engine, outcomes, regions, skipped)
