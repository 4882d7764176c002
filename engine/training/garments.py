"""Training the garment-region head: anchors from the matching-time regions, labelled by IoU with
annotated garment boxes (SSD-style), and a small classifier + box regressor over their pooled features."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.categories import merged
from engine.geometry import Box, band_fractions, clipped, garment_windows
from engine.io.catalogue import Catalogue
from engine.io.images import crop
from engine.models.garments import BACKGROUND, N_GEOMETRY, GarmentHead, box_offsets, iou_matrix, window_geometry
from engine.models.heads import next_version, save_checkpoint
from engine.models.protocols import base_of
from engine.pipeline.regions import detect_regions
from engine.training.data import AnnotatedImage, ImageReader, annotated_images

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class GarmentConfig:
    hidden: int = 128
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    positive_iou: float = 0.5
    negative_iou: float = 0.4
    seed: int = 0


def region_anchors(engine, images: list[np.ndarray]) -> list[list[tuple[Box, list, np.ndarray, np.ndarray]]]:
    """For each image: [(region box, its windows, band features (n, dim), geometry (n, 6))] per region.

    Uses the engine's detector and region rules, and the backbone without any projection head."""
    base = base_of(engine.embedder)
    dets = detect_regions(engine.detector, images, engine.settings.detection)  # as at matching time
    regions = [(i, clipped(tuple(b), im.shape[:2]), d.source == "whole-frame")
               for i, (d, im) in enumerate(zip(dets, images)) for b in d.boxes]
    feats = base.embed_bands([crop(images[i], b) for i, b, _ in regions], band_fractions()) if regions else []
    out: list[list] = [[] for _ in images]
    for (i, box, whole), f in zip(regions, feats):
        out[i].append((box, garment_windows(box), f, window_geometry(box, images[i].shape[:2], whole)))
    return out


def labelled_anchors(engine, images: list[AnnotatedImage], classes: list[str] | None = None,
                     cfg: GarmentConfig = GarmentConfig(), progress: Progress = lambda s, f: None):
    """Anchor features, geometry, class targets (-1 = ignored), box-offset targets, and the classes."""
    reader = ImageReader()
    feats, geoms, targets, offsets = [], [], [], []
    classes = classes or [BACKGROUND] + sorted({merged(c) for im in images for c in im.categories})
    for k in range(0, len(images), 8):
        progress("anchors", k / max(1, len(images)))
        chunk = [(im, reader.get(im.source, im.frame_index)) for im in images[k : k + 8]]
        chunk = [(im, rgb) for im, rgb in chunk if rgb is not None]
        for (im, _), regions in zip(chunk, region_anchors(engine, [rgb for _, rgb in chunk])):
            gt = np.asarray(im.boxes, np.float32)
            gt_cls = [classes.index(merged(c)) if merged(c) in classes else -1 for c in im.categories]
            for _, windows, f, g in regions:
                iou = iou_matrix(np.asarray(windows, np.float32), gt)
                best = iou.argmax(1) if iou.size else np.zeros(len(windows), int)
                best_iou = iou.max(1) if iou.size else np.zeros(len(windows))
                t = np.where(best_iou >= cfg.positive_iou, [gt_cls[j] for j in best], 0)
                t = np.where((best_iou >= cfg.negative_iou) & (best_iou < cfg.positive_iou), -1, t)
                feats.append(f)
                geoms.append(g)
                targets.append(t)
                offsets.append(np.asarray([box_offsets(w, tuple(gt[j])) if len(gt) else (0, 0, 0, 0)
                                           for w, j in zip(windows, best)], np.float32))
    progress("anchors", 1.0)
    dim = feats[0].shape[1] if feats else 0
    return (np.concatenate(feats) if feats else np.zeros((0, dim), np.float32),
            np.concatenate(geoms) if geoms else np.zeros((0, N_GEOMETRY), np.float32),
            np.concatenate(targets).astype(int) if targets else np.zeros(0, int),
            np.concatenate(offsets) if offsets else np.zeros((0, 4), np.float32), classes)


def train_garment_head(engine, catalogue: Catalogue, out: str | Path | None = None,
                       cfg: GarmentConfig = GarmentConfig(), products: set[str] | None = None,
                       progress: Progress = lambda s, f: None, home: Path | None = None) -> tuple[GarmentHead, dict]:
    """Train on the annotated shop images and clip frames of ``products``; save a checkpoint."""
    import torch

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    images = annotated_images(catalogue, products)
    if not images:
        raise ValueError("no annotated images to train the garment head on")
    x, g, y, off, classes = labelled_anchors(engine, images, cfg=cfg, progress=progress)
    keep = y >= 0
    x_t = torch.from_numpy(np.concatenate([x, g], axis=1)[keep])
    y_t = torch.from_numpy(y[keep])
    off_t = torch.from_numpy(off[keep])
    positive = y_t > 0
    counts = torch.bincount(y_t, minlength=len(classes)).float()
    weights = (counts.sum() / (counts.clamp(min=1) * len(classes))).clamp(max=20.0)
    model = GarmentHead.build(x.shape[1], len(classes), cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    model.train()
    losses = []
    for epoch in range(cfg.epochs):
        if epoch % 25 == 0:
            progress("train", epoch / cfg.epochs)
        pred = model(x_t)
        loss = loss_fn(pred[:, : len(classes)], y_t)
        if positive.any():
            loss = loss + torch.nn.functional.smooth_l1_loss(pred[positive, len(classes):], off_t[positive], beta=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    progress("train", 1.0)
    base = base_of(engine.embedder)
    meta = {
        "base_key": base.key, "in_dim": int(x.shape[1]), "classes": classes, "config": asdict(cfg),
        "detector": engine.settings.models.detector, "products": sorted({im.product_id for im in images}),
        "images": len(images), "anchors": int(keep.sum()),
        "positives": int((y[keep] > 0).sum()), "catalogue": catalogue.root,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = Path(out) if out else next_version((home or Path(".")) / "models", "garment-head")
    save_checkpoint(path, "garment-head", {k: v.detach().clone() for k, v in model.state_dict().items()}, meta)
    info = dict(meta, checkpoint=str(path), loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4),
                seconds=round(time.perf_counter() - t0, 1))
    return GarmentHead(model, classes, meta), info
def box_category(engine, head: GarmentHead, image: np.ndarray, box: Box) -> dict[str, float]:
    """The head's merged-category distribution (background excluded) for one given box."""
    base = base_of(engine.embedder)
    box = clipped(box, image.shape[:2])
    feats = base.embed_bands([crop(image, box)], [(0.0, 1.0)])[0]
    geom = window_geometry(box, image.shape[:2], False)[:1]
    return head.distribution(head.predict(feats, geom)[0])
