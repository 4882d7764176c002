"""Sanity check of the packaged EfficientNet-Lite0 weights: ImageNet top-5 of a few images."""

from __future__ import annotations

import numpy as np

from engine.io.images import read_rgb
from engine.models.embedders import IMAGENET_MEAN, IMAGENET_STD, load_efficientnet_lite0
from engine.models.weights import imagenet_labels


def classify(images: list[np.ndarray], k: int = 5) -> list[list[tuple[str, float]]]:
    """ImageNet top-k (label, probability) of RGB images, with the full classifier head."""
    import cv2
    import torch

    model = load_efficientnet_lite0().eval()
    labels = imagenet_labels()
    batch = np.stack([cv2.resize(im, (224, 224), interpolation=cv2.INTER_AREA) for im in images]).astype(np.float32)
    x = torch.from_numpy(((batch / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2).copy())
    with torch.inference_mode():
        probs = model(x).softmax(-1).numpy()
    out = []
    for p in probs:
        top = np.argsort(-p)[:k]
        out.append([(labels[i] if i < len(labels) else str(i), float(p[i])) for i in top])
    return out


def classify_files(paths: list[str], k: int = 5) -> list[tuple[str, list[tuple[str, float]]]]:
    if not paths:
        return []
    return list(zip(paths, classify([read_rgb(p) for p in paths], k)))
