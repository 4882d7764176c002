"""The learned garment-region head at matching time: a garment detector on top of the person detector
(trained by ``python -m engine train-garments``, engine.training.garments).

COCO's SSD finds people; a catalogue sells garments. The garment windows of each detected region
(``engine.geometry.garment_windows``: the region and 18 horizontal bands) serve as anchors, like an SSD's
default boxes, and a small head classifies each anchor as one of the merged garment categories or
background from the anchor's pooled backbone feature and its geometry. Anchors are matched to
annotated garment boxes at IoU >= 0.5 (background below 0.4), as in SSD training.

At matching time the head keeps the few best-scoring, non-overlapping windows of each region
(instead of searching all of them) and gives each a garment category, which the search can use.
The features come from one forward pass per region (regional pooling), so scoring is cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.geometry import Box, band_fractions
from engine.models.heads import load_checkpoint
from engine.types import Detections

BACKGROUND = "background"
N_GEOMETRY = 6


def window_geometry(region: Box, image_hw: tuple[int, int], whole: bool) -> np.ndarray:
    """(n_windows, N_GEOMETRY): each window's top and bottom within the region, its height, the
    region's aspect and size in the image, and whether the region is the whole image."""
    h, w = image_hw
    x0, y0, x1, y1 = region
    aspect = np.log(max(1.0, y1 - y0) / max(1.0, x1 - x0))
    area = (x1 - x0) * (y1 - y0) / max(1.0, w * h)
    rows = [(a, b, b - a, aspect, area, float(whole)) for a, b in band_fractions()]
    return np.asarray(rows, np.float32)


def box_offsets(window: Box, target: Box) -> Box:
    """Offsets from a window to a target box, in units of the window's width and height."""
    w, h = max(1.0, window[2] - window[0]), max(1.0, window[3] - window[1])
    return ((target[0] - window[0]) / w, (target[1] - window[1]) / h,
            (target[2] - window[2]) / w, (target[3] - window[3]) / h)


def apply_offsets(window: Box, offsets) -> Box:
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
               nms_iou: float = 0.5) -> Detections:
        """Garment boxes of one region, best first, scored by 1 - background probability, labelled with their
        most likely merged category, with each box's category distribution (background excluded)."""
        probs, offsets = self.predict_boxes(features, geometry)
        boxes = [apply_offsets(w, o) for w, o in zip(windows, offsets)]
        keep = self.select(boxes, probs, top, nms_iou)
        classes = tuple(self.distribution(probs[j]) for j in keep)
        return Detections(np.asarray([boxes[j] for j in keep], np.float64).reshape(-1, 4),  # exact for cropping
                          np.asarray([1.0 - probs[j, 0] for j in keep], np.float32),
                          tuple(max(c, key=c.get) if c else "" for c in classes), "garment-head", classes)

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
