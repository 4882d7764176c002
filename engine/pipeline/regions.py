"""Regions: frames -> detector boxes -> the product regions searched (whole frame when nothing is found)."""

from __future__ import annotations

import numpy as np

from engine.config import DetectionSettings
from engine.geometry import Box
from engine.models.detectors import Detector, detect_side_by_side
from engine.types import Detections, Frame


def product_regions(det: Detections, image: np.ndarray, s: DetectionSettings) -> Detections:
    """Keep the most confident boxes of at least ``min_region_area`` of the image; fall back to the whole
    image when there are none."""
    h, w = image.shape[:2]
    det = det[det.areas >= s.min_region_area * w * h]
    if len(det) == 0:
        return Detections.whole(w, h)
    order = np.argsort(-det.scores)[: s.max_regions]
    return det[order]


def detect_regions(detector: Detector, images: list[np.ndarray], s: DetectionSettings) -> list[Detections]:
    """The product regions of every image, detected side by side in pairs when the settings say so."""
    found = (detect_side_by_side(detector, images, s.det_threshold) if s.side_by_side
             else detector.detect(images, s.det_threshold))
    return [product_regions(d, im, s) for d, im in zip(found, images)]


def detect_frames(detector: Detector, frames: list[Frame], s: DetectionSettings) -> list[Detections]:
    """The product regions of each frame (the whole frame where nothing is detected), as a match finds them."""
    return detect_regions(detector, [f.image for f in frames], s) if frames else []


def proposed_box(det: Detections) -> Box | None:
    """The most confident detected box of an image's regions; None when only the whole image was found."""
    if det.source == "whole-frame" or len(det) == 0:
        return None
    x0, y0, x1, y1 = (float(v) for v in det.boxes[int(np.argmax(det.scores))])
    return (x0, y0, x1, y1)


def propose_boxes(detector: Detector, images: list[np.ndarray],
                  s: DetectionSettings) -> list[Box | None]:
    """A box to propose as the product in each image (catalogue editing): its best detected region, or None."""
    return [proposed_box(d) for d in detect_regions(detector, images, s)] if images else []
