"""The livestream-domain mean (``python -m engine domain-mean``): the coordinate-wise median of the vectors of the
regions the pipeline detects in a set of clips (whole person regions, as matching finds them; no labels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import ModelError
from engine.io.files import atomic_write
from engine.io.images import crop
from engine.io.video import sample_frames
from engine.models.domain import robust_mean
from engine.pipeline.regions import detect_regions


def region_vectors(engine, clips: list[str], progress: Callable[[str, float], None] | None = None) -> list[np.ndarray]:
    """Per clip, the raw (uncentred) vectors of the detected regions of its sampled frames."""
    s = engine.settings
    out = []
    for n, clip in enumerate(clips):
        if progress:
            progress(Path(clip).name, n / max(1, len(clips)))
        frames = sample_frames(clip, s.detection.frames)
        dets = detect_regions(engine.detector, [f.image for f in frames], s.detection)
        crops = [crop(f.image, b) for f, d in zip(frames, dets) for b in d.boxes]
        out.append(engine.embedder.embed(crops, s.models.batch_size))
    return out


def compute_domain_mean(engine, clips: list[str], out: str | Path,
                        progress: Callable[[str, float], None] | None = None) -> Path:
    """Write the livestream mean of ``clips`` to ``out`` (.npy) with a .json sidecar that records how it was made."""
    per_clip = [v for v in region_vectors(engine, clips, progress) if len(v)]
    if not per_clip:
        raise ModelError("no livestream regions found: nothing to average")
    vectors = np.concatenate(per_clip)
    s = engine.settings
    meta = {"embedder_key": engine.embedder.key, "statistic": "coordinate-wise median", "regions": int(len(vectors)),
            "clips": [Path(c).name for c in clips], "frames_per_clip": s.detection.frames,
            "detector": s.models.detector, "det_threshold": s.detection.det_threshold,
            "max_regions": s.detection.max_regions, "min_region_area": s.detection.min_region_area}
    out = Path(out)
    with atomic_write(out, binary=True) as f:
        np.save(f, robust_mean(vectors), allow_pickle=False)
    with atomic_write(out.with_suffix(".json")) as f:
        f.write(json.dumps(meta, indent=1))
    return out
