"""Augmentations for training: what changes between a shop photo and a livestream frame.

Colour and white balance, mirror images, a slightly tilted camera, loose crops, motion or focus
blur, and the JPEG / stream compression of a live video. Built from torchvision.transforms.v2 and
seeded through torch's generator, so training is reproducible.
"""

from __future__ import annotations

import numpy as np


def train_transform(strength: str = "normal"):  # -> torchvision.transforms.v2.Compose
    """The augmentation pipeline for uint8 CHW tensors; "strong" is used for self-supervised pairs."""
    import warnings

    from torchvision.transforms import v2

    # v2.JPEG uses torchvision.io's JPEG codec, which warns that TorchCodec will replace it; it works.
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")
    strong = strength == "strong"
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.RandomRotation(12 if strong else 8)], p=0.5),
        v2.RandomApply([v2.RandomResizedCrop((288, 224), scale=(0.5 if strong else 0.7, 1.0),
                                             ratio=(0.6, 1.0), antialias=True)], p=0.7),
        v2.ColorJitter(0.4 if strong else 0.25, 0.4 if strong else 0.25, 0.3 if strong else 0.2, 0.05),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=0.3),
        v2.RandomApply([v2.JPEG((30, 90))], p=0.5),
    ])


def augment(crops: list[np.ndarray], transform) -> list[np.ndarray]:
    """Apply ``transform`` to RGB uint8 HWC crops; returns RGB uint8 HWC crops."""
    import torch

    out = []
    for c in crops:
        t = torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1)
        out.append(transform(t).permute(1, 2, 0).contiguous().numpy())
    return out
