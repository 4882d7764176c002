"""The Catalogue page's "Learned models" tab: train the garment-region head and the embedding head on the
catalogue in use, list the trained checkpoints, and switch the sidebar to a new one."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.io.catalogue import Catalogue
from engine.config import Settings
from engine.training.data import annotated_images, product_regions

from .progress import staged, run_with_progress
from .state import get_engine_models, request_checkpoint, trained_checkpoints

TRAIN_STAGES = {
    "": (0.0, 0.02, "Starting…"),
    "features": (0.0, 0.85, "Embedding augmented views of the product regions"),
    "anchors": (0.0, 0.85, "Detecting people and scoring garment windows"),
    "train": (0.85, 1.0, "Training"),
}
MODES = {
    "cross-domain": "Cross-domain (clip regions ↔ shop images)",
    "self-supervised": "Self-supervised (augmented shop views)",
}


def training_panel(settings: Settings, catalogue: Catalogue) -> None:
    regions = product_regions(catalogue, whole_images=False)  # counts only: no image is opened on a rerun
    boxed = {r.image_path for p in catalogue.products.values() for r in p.regions if r.source == "annotation"}
    unboxed = sum(1 for p in catalogue.products.values() for img in p.images if img not in boxed)
    images = annotated_images(catalogue)
    clip_regions = sum(r.domain == "clip" for r in regions)
    st.caption("Both heads train on this catalogue in a minute or two on a CPU, over the frozen pretrained "
               "backbone, seeded. A new version is saved each time; choose it in the sidebar under "
               "**Models**. The leave-products-out comparison is `python -m engine evaluate --compare --learned`.")
    left, right = st.columns(2, border=True)
    with left:
        st.markdown("**Garment regions** · finds tops, skirts, dresses… inside each detected person")
        st.caption(f"{len(images)} images with annotated garment boxes.")
        if st.button("Train the garment head", icon=":material/model_training:", key="train.garment",
                     disabled=not images, help=None if images else "This catalogue has no annotated boxes."):
            _reporting(_train_garment, settings, catalogue)
    with right:
        st.markdown("**Embedding head** · a projection trained with triplet loss")
        st.caption(f"{len(regions) - clip_regions + unboxed} shop regions · {clip_regions} annotated clip regions.")
        mode = st.selectbox("Mode", list(MODES), format_func=MODES.get, key="train.mode",
                            help="Cross-domain uses annotated clip frames as anchors and falls back to shop images "
                                 "alone without them; self-supervised needs no labels beyond the images.")
        if st.button("Train the embedding head", icon=":material/model_training:", key="train.embedding",
                     disabled=sum(1 for p in catalogue.products.values() if p.images) < 2):
            _reporting(_train_embedding, settings, catalogue, str(mode))
    found = trained_checkpoints(settings, "projection-head") + trained_checkpoints(settings, "garment-head")
    if found:
        st.markdown("**Trained checkpoints** (in `" + str(settings.home / "models") + "`)")
        st.dataframe([{"checkpoint": Path(p).name, "details": label.split(" · ", 1)[-1]} for p, label in found],
                     hide_index=True, width="stretch")


def _reporting(train, *args) -> None:
    """Run a training; what the data cannot support (too few products, no boxes) is a message, not an error."""
    try:
        train(*args)
    except ValueError as e:
        st.warning(f"Not trained: {e}.", icon=":material/warning:")


def _train_garment(settings: Settings, catalogue: Catalogue) -> None:
    from engine.training.garments import train_garment_head

    engine = get_engine_models(settings)
    _, info = run_with_progress(
        lambda progress: train_garment_head(engine, catalogue, progress=progress, home=settings.home),
        staged(TRAIN_STAGES))
    request_checkpoint("cfg.garment_model", info["checkpoint"],
                       f"Trained {Path(info['checkpoint']).name} on {info['images']} images in {info['seconds']} s. "
                       "It is now selected under Models in the sidebar.")


def _train_embedding(settings: Settings, catalogue: Catalogue, mode: str) -> None:
    from engine.training.triplet import TripletConfig, train_projection

    engine = get_engine_models(settings)
    report = run_with_progress(
        lambda progress: train_projection(getattr(engine.embedder, "base", engine.embedder), catalogue,
                                          config=TripletConfig(mode=mode), progress=progress, home=settings.home),
        staged(TRAIN_STAGES))
    request_checkpoint("cfg.head", report.checkpoint,
                       f"Trained {Path(report.checkpoint).name} ({report.mode}, {len(report.products)} products) in "
                       f"{report.seconds['total']} s. It is now selected under Models in the sidebar; the next "
                       "match re-indexes the catalogue with it.")
