"""Garment detection AP@0.5 on annotated images: the learned head against two references without learning."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.models.garments import GarmentHead, iou_matrix
from engine.training.data import AnnotatedImage, ImageReader
from engine.training.garments import region_anchors


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
                found = head.detect(windows, f, g, top)
                lb += [tuple(b) for b in found.boxes]
                ls += [float(v) for v in found.scores]
        as_boxes = lambda b: np.asarray(b, np.float32).reshape(-1, 4)  # noqa: E731
        if head is not None:
            out.learned.append((as_boxes(lb), np.asarray(ls)))
        out.detector_regions.append((as_boxes(rb), np.asarray(rs)))
        out.all_windows.append((as_boxes(wb), np.asarray(ws)))
    return out


def detection_ap(engine, head: GarmentHead | None, images: list[AnnotatedImage], top: int = 3) -> dict[str, float]:
    """AP@0.5 of garment boxes on annotated images; see :func:`garment_detections`."""
    return garment_detections(engine, head, images, top).ap()


@dataclass(frozen=True)
class BoxAgreement:
    """How two detectors' boxes on the same images agree: each image's boxes paired one to one by the largest total
    IoU (Hungarian), a pair counting as matched when its IoU is above ``min_iou``."""

    boxes_a: int
    boxes_b: int
    ious: tuple[float, ...]  # of the matched pairs
    unmatched_a: int
    unmatched_b: int

    @property
    def matched(self) -> int:
        return len(self.ious)

    @property
    def median_iou(self) -> float:
        return float(np.median(self.ious)) if self.ious else float("nan")

    @property
    def min_iou(self) -> float:
        return float(min(self.ious)) if self.ious else float("nan")

    def line(self) -> str:
        return (f"boxes {self.boxes_a} / {self.boxes_b}, matched {self.matched} (median IoU {self.median_iou:.4f}, "
                f"lowest {self.min_iou:.4f}), unmatched {self.unmatched_a} / {self.unmatched_b}")


def box_agreement(a: list, b: list, min_iou: float = 0.0) -> BoxAgreement:
    """The agreement of two detectors' ``Detections`` on the same images (``a[i]`` and ``b[i]`` of image i)."""
    from scipy.optimize import linear_sum_assignment

    ious: list[float] = []
    n_a = n_b = un_a = un_b = 0
    for da, db in zip(a, b, strict=True):
        m = iou_matrix(np.asarray(da.boxes, np.float32), np.asarray(db.boxes, np.float32))
        rows, cols = linear_sum_assignment(-m) if m.size else (np.zeros(0, int), np.zeros(0, int))
        good = [float(m[r, c]) for r, c in zip(rows, cols) if m[r, c] > min_iou]
        ious += good
        n_a, n_b = n_a + len(da.boxes), n_b + len(db.boxes)
        un_a, un_b = un_a + len(da.boxes) - len(good), un_b + len(db.boxes) - len(good)
    return BoxAgreement(n_a, n_b, tuple(ious), un_a, un_b)
