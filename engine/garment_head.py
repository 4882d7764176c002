"""A learned garment-region detector on top of the person detector (``python -m engine train-garments``).

COCO's SSD finds people; a catalogue sells garments. The garment windows of each detected region
(``regions.garment_windows``: the region and 18 horizontal bands) serve as anchors, like an SSD's
default boxes, and a small head classifies each anchor as one of the merged garment categories or
background from the anchor's pooled backbone feature and its geometry. Anchors are matched to
annotated garment boxes at IoU >= 0.5 (background below 0.4), as in SSD training.

At matching time the head keeps the few best-scoring, non-overlapping windows of each region
(instead of searching all of them) and gives each a garment category, which the search can use.
The features come from one forward pass per region (regional pooling), so scoring is cheap.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .catalog import Catalogue
from .categories import merged
from .images import crop
from .models.detectors import detect_side_by_side
from .models.heads import load_checkpoint, next_version, save_checkpoint
from .regions import band_fractions, garment_windows
from .train_data import AnnotatedImage, ImageReader, annotated_images

Progress = Callable[[str, float], None]
BACKGROUND = "background"
N_GEOMETRY = 6


@dataclass(frozen=True)
class GarmentConfig:
    hidden: int = 128
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    positive_iou: float = 0.5
    negative_iou: float = 0.4
    seed: int = 0


def window_geometry(region: tuple[float, ...], image_hw: tuple[int, int], whole: bool) -> np.ndarray:
    """(n_windows, N_GEOMETRY): each window's top and bottom within the region, its height, the
    region's aspect and size in the image, and whether the region is the whole image."""
    h, w = image_hw
    x0, y0, x1, y1 = region
    aspect = np.log(max(1.0, y1 - y0) / max(1.0, x1 - x0))
    area = (x1 - x0) * (y1 - y0) / max(1.0, w * h)
    rows = [(a, b, b - a, aspect, area, float(whole)) for a, b in band_fractions()]
    return np.asarray(rows, np.float32)


def clipped(box: tuple[float, ...], image_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    h, w = image_hw
    x0, y0, x1, y1 = (float(v) for v in box)
    return (max(0.0, min(x0, w)), max(0.0, min(y0, h)), max(0.0, min(x1, w)), max(0.0, min(y1, h)))


def region_anchors(engine, images: list[np.ndarray]) -> list[list[tuple[tuple[float, ...], list, np.ndarray, np.ndarray]]]:
    """For each image: [(region box, its windows, band features (n, dim), geometry (n, 6))] per region.

    Uses the engine's detector and region rules, and the backbone without any projection head."""
    s = engine.settings
    base = getattr(engine.embedder, "base", engine.embedder)
    found = (detect_side_by_side(engine.detector, images, s.det_threshold) if s.side_by_side
             else engine.detector.detect(images, s.det_threshold))  # as at matching time
    dets = [engine._product_regions(d, im) for d, im in zip(found, images)]
    regions = [(i, clipped(tuple(b), im.shape[:2]), d.source == "whole-frame")
               for i, (d, im) in enumerate(zip(dets, images)) for b in d.boxes]
    feats = base.embed_bands([crop(images[i], b) for i, b, _ in regions], band_fractions()) if regions else []
    out: list[list] = [[] for _ in images]
    for (i, box, whole), f in zip(regions, feats):
        out[i].append((box, garment_windows(box), f, window_geometry(box, images[i].shape[:2], whole)))
    return out


def box_offsets(window: tuple[float, ...], target: tuple[float, ...]) -> tuple[float, float, float, float]:
    """Offsets from a window to a target box, in units of the window's width and height."""
    w, h = max(1.0, window[2] - window[0]), max(1.0, window[3] - window[1])
    return ((target[0] - window[0]) / w, (target[1] - window[1]) / h,
            (target[2] - window[2]) / w, (target[3] - window[3]) / h)


def apply_offsets(window: tuple[float, ...], offsets) -> tuple[float, float, float, float]:
    w, h = max(1.0, window[2] - window[0]), max(1.0, window[3] - window[1])
    o = [float(v) for v in np.clip(np.asarray(offsets, np.float32), -0.5, 0.5)]
    return (float(window[0] + o[0] * w), float(window[1] + o[1] * h),
            float(window[2] + o[2] * w), float(window[3] + o[3] * h))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch
    from torchvision.ops import box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    return box_iou(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)).numpy()


class GarmentHead:
    """The trained classifier over window features; loads from and saves to a checkpoint."""

    def __init__(self, model, classes: list[str], meta: dict) -> None:
        self.model = model.eval()
        self.classes = classes  # index 0 is background
        self.meta = meta

    @staticmethod
    def build(dim: int, n_classes: int, hidden: int):
        import torch

        return torch.nn.Sequential(
            torch.nn.Linear(dim + N_GEOMETRY, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
            torch.nn.Linear(hidden, n_classes + 4),  # class logits, then box offsets (SSD-style)
        )

    @classmethod
    def load(cls, path: str | Path) -> GarmentHead:
        state, meta = load_checkpoint(path, "garment-head")
        model = cls.build(int(meta["in_dim"]), len(meta["classes"]), int(meta["config"]["hidden"]))
        model.load_state_dict(state)
        return cls(model, list(meta["classes"]), meta)

    def predict(self, features: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes); column 0 is background."""
        return self.predict_boxes(features, geometry)[0]

    def predict_boxes(self, features: np.ndarray, geometry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities (n, n_classes), box offsets (n, 4) relative to each window's size)."""
        import torch

        x = torch.from_numpy(np.concatenate([features, geometry], axis=1).astype(np.float32))
        with torch.inference_mode():
            out = self.model(x)
        k = len(self.classes)
        return torch.softmax(out[:, :k], dim=1).numpy(), out[:, k:].numpy()

    def detect(self, windows: list, features: np.ndarray, geometry: np.ndarray, top: int,
               nms_iou: float = 0.5) -> list[tuple[tuple[float, ...], float, dict[str, float]]]:
        """Garment boxes of one region, best first: (refined box, garment score, merged-category
        distribution without background)."""
        probs, offsets = self.predict_boxes(features, geometry)
        boxes = [apply_offsets(w, o) for w, o in zip(windows, offsets)]
        return [(boxes[j], float(1.0 - probs[j, 0]), self.distribution(probs[j]))
                for j in self.select(boxes, probs, top, nms_iou)]

    def distribution(self, probs_row: np.ndarray) -> dict[str, float]:
        total = max(1e-9, float(probs_row[1:].sum()))
        return {c: float(p) / total for c, p in zip(self.classes[1:], probs_row[1:])}

    def select(self, windows: list, probs: np.ndarray, top: int, nms_iou: float = 0.5) -> list[int]:
        """Indices of up to ``top`` windows by garment score (1 - background), non-overlapping at nms_iou."""
        import torch
        from torchvision.ops import nms

        scores = 1.0 - probs[:, 0]
        keep = nms(torch.as_tensor(np.asarray(windows), dtype=torch.float32),
                   torch.as_tensor(scores, dtype=torch.float32), nms_iou).tolist()
        return keep[: max(1, top)]


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
    base = getattr(engine.embedder, "base", engine.embedder)
    meta = {
        "base_key": base.key, "in_dim": int(x.shape[1]), "classes": classes, "config": asdict(cfg),
        "detector": engine.settings.detector, "products": sorted({im.product_id for im in images}),
        "images": len(images), "anchors": int(keep.sum()),
        "positives": int((y[keep] > 0).sum()), "catalogue": catalogue.root,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = Path(out) if out else next_version((home or Path(".")) / "models", "garment-head")
    save_checkpoint(path, "garment-head", {k: v.detach().clone() for k, v in model.state_dict().items()}, meta)
    info = dict(meta, checkpoint=str(path), loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4),
                seconds=round(time.perf_counter() - t0, 1))
    return GarmentHead(model, classes, meta), info


def average_precision(detections: list[tuple[np.ndarray, np.ndarray]], truths: list[np.ndarray],
                      iou: float = 0.5) -> float:
    """Single-class AP at ``iou`` (all-point interpolated, as PASCAL VOC 2010+) over many images.

    ``detections[i]`` = (boxes (n, 4), scores (n,)) of image i; ``truths[i]`` = its boxes (m, 4)."""
    records = []  # (score, is_true_positive)
    n_truth = sum(len(t) for t in truths)
    for (boxes, scores), gt in zip(detections, truths):
        order = np.argsort(-np.asarray(scores))
        used = np.zeros(len(gt), bool)
        ious = iou_matrix(np.asarray(boxes, np.float32)[order], np.asarray(gt, np.float32))
        for rank, i in enumerate(order):
            j = int(ious[rank].argmax()) if len(gt) else -1
            hit = j >= 0 and ious[rank, j] >= iou and not used[j]
            if hit:
                used[j] = True
            records.append((float(scores[i]), hit))
    if n_truth == 0:
        return 0.0
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records])
    precision = tp / np.arange(1, len(records) + 1)
    recall = tp / n_truth
    # precision envelope, then the area under the step curve
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    prev_recall = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - prev_recall) * envelope))


@dataclass
class GarmentDetections:
    """Detections of annotated images, for AP: the learned head's boxes and two references."""

    learned: list = field(default_factory=list)
    detector_regions: list = field(default_factory=list)
    all_windows: list = field(default_factory=list)
    truths: list = field(default_factory=list)

    def extend(self, other: GarmentDetections) -> None:
        for name in ("learned", "detector_regions", "all_windows", "truths"):
            getattr(self, name).extend(getattr(other, name))

    def ap(self) -> dict[str, float]:
        out = {"images": len(self.truths), "boxes": int(sum(len(t) for t in self.truths)),
               "ap50_detector_regions": round(average_precision(self.detector_regions, self.truths), 4),
               "ap50_all_windows": round(average_precision(self.all_windows, self.truths), 4)}
        if self.learned:
            out["ap50_garment_head"] = round(average_precision(self.learned, self.truths), 4)
        return out


def garment_detections(engine, head: GarmentHead | None, images: list[AnnotatedImage],
                       top: int = 3) -> GarmentDetections:
    """Run the learned head on annotated images (every garment box is a truth). References without
    learning: the detector's own regions, and every garment window ranked by its region's rank."""
    reader = ImageReader()
    out = GarmentDetections()
    readable = [(im, rgb) for im in images if (rgb := reader.get(im.source, im.frame_index)) is not None]
    anchors: list = []
    for k in range(0, len(readable), 10):  # chunks of an even size: frames are detected in pairs, as in matching
        anchors += region_anchors(engine, [rgb for _, rgb in readable[k : k + 10]])
    for (im, _), regions in zip(readable, anchors):
        out.truths.append(np.asarray(im.boxes, np.float32))
        lb, ls, rb, rs, wb, ws = [], [], [], [], [], []
        for rank, (box, windows, f, g) in enumerate(regions):
            rb.append(box)
            rs.append(1.0 / (1 + rank))
            wb += windows
            ws += [1.0 / (1 + rank)] * len(windows)
            if head is not None:
                for b, score, _ in head.detect(windows, f, g, top):
                    lb.append(b)
                    ls.append(score)
        as_boxes = lambda b: np.asarray(b, np.float32).reshape(-1, 4)  # noqa: E731
        if head is not None:
            out.learned.append((as_boxes(lb), np.asarray(ls)))
        out.detector_regions.append((as_boxes(rb), np.asarray(rs)))
        out.all_windows.append((as_boxes(wb), np.asarray(ws)))
    return out


def detection_ap(engine, head: GarmentHead | None, images: list[AnnotatedImage], top: int = 3) -> dict[str, float]:
    """AP@0.5 of garment boxes on annotated images; see :func:`garment_detections`."""
    return garment_detections(engine, head, images, top).ap()


def box_category(engine, head: GarmentHead, image: np.ndarray, box: tuple[float, ...]) -> dict[str, float]:
    """The head's merged-category distribution (background excluded) for one given box."""
    base = getattr(engine.embedder, "base", engine.embedder)
    box = clipped(box, image.shape[:2])
    feats = base.embed_bands([crop(image, box)], [(0.0, 1.0)])[0]
    geom = window_geometry(box, image.shape[:2], False)[:1]
    return head.distribution(head.predict(feats, geom)[0])
