"""Cosine of each OpenVINO precision's vectors to f32's, per member of the default ensemble and for it, on crops
of a dataset: its annotated catalogue regions (the first 150) and 5 garment windows of a central box in each of 4
frames per clip. The figures of docs/performance-cpu.md:

    python scripts/precision_cosines.py ../shared/data/watchlive-dev

int8 models are quantised on first use (about 30 s per member on 2 cores), under $LIVEMATCH_HOME, calibrated on the
dataset's catalogue photos as `evaluate` calibrates them (the catalogue regions measured here are among them; the
frame windows are not).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the engine beside this folder

from engine.io.catalogue import load_catalogue  # noqa: E402
from engine.io.images import crop, read_rgb  # noqa: E402
from engine.io.video import sample_frames  # noqa: E402
from engine.models import get_embedder  # noqa: E402
from engine.pipeline.windows import garment_windows  # noqa: E402



def models() -> list[str]:
    """The default embedder's members, then the default embedder itself (or just it, when it is one backbone)."""
    from engine.config import Settings
    from engine.models.ensemble import is_ensemble, members_of

    name = Settings().models.embedder
    return ([m for m, _ in members_of(name)] if is_ensemble(name) else []) + [name]


def dataset_crops(root: str) -> list[np.ndarray]:
    catalogue = load_catalogue(root)
    crops = [crop(read_rgb(r.image_path), r.box) for p in catalogue.products.values() for r in p.regions][:150]
    rng = np.random.default_rng(0)
    for clip in catalogue.clips.values():
        if not clip.path:
            continue
        for frame in sample_frames(clip.path, 4):
            h, w = frame.image.shape[:2]
            windows = garment_windows((0.2 * w, 0.1 * h, 0.8 * w, 0.9 * h))
            crops += [crop(frame.image, tuple(int(v) for v in windows[i]))
                      for i in rng.choice(len(windows), 5, replace=False)]
    return crops


def main(root: str) -> None:
    from engine.models.openvino_rt import cpu_capabilities

    crops = dataset_crops(root)
    precisions = (["bf16"] if "BF16" in cpu_capabilities() else []) + ["int8"]  # bf16: where the CPU runs it
    for name in models():
        ref = get_embedder(name, device="cpu", runtime="openvino", precision="f32").embed(crops, 8)
        for precision in precisions:
            vec = get_embedder(name, device="cpu", runtime="openvino", precision=precision, calibration=root).embed(crops, 8)
            cos = (ref * vec).sum(1)
            print(f"{name} {precision}: cosine to f32 over {len(crops)} crops: min {cos.min():.4f} "
                  f"mean {cos.mean():.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/watchlive-dev")
