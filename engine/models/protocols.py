"""What a model can do, declared as ``Protocol``s: the pipeline checks a capability with ``isinstance`` (or
``pools_bands``), it never probes attributes.

- :class:`Embedder`: every embedder (name, keys, input size, runtime, precision; ``embed``).
- :class:`BandPooler`: feature maps from one forward pass per region, pooled over boxes and bands; ``supports_bands``
  says whether this one really has them (an ensemble or a head has the methods, and has them when its parts do).
- :class:`WithBase`: an embedder over a base embedder (a projection head): feature maps and garment heads are the
  base's.
- :class:`Ensemble`: weighted members, and ``vectors_graph``, the members' vectors as one compiled model (or None).
- :class:`Exported`: an embedder whose forward pass runs an exported :class:`Backbone` (ONNX Runtime, OpenVINO).
- :class:`Preparable`: a compiled model that compiles a shape ahead of its first run (OpenVINO).
- :class:`Releasable`: a compiled model that lets go of compiled shapes it no longer needs (OpenVINO).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, TypeGuard, runtime_checkable

import numpy as np

from engine.geometry import Box


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int
    key: str  # identifies weights + preprocessing: heads, domain means and checkpoints are made for a key
    vectors_key: str  # key + how its vectors are computed (precision): embedding caches and indexes are keyed by it
    device: str
    runtime: str  # "torch", "onnxruntime", "openvino" (an ensemble: its members' joined by "+")
    precision: str  # "f32", "bf16", "int8" (OpenVINO; torch and ONNX Runtime: "f32")
    input_hw: tuple[int, int]  # (height, width) its crops are resized to

    def embed(self, crops: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """(N, dim) float32, L2-normalised, for N RGB crops of any size."""
        ...


@runtime_checkable
class BandPooler(Embedder, Protocol):
    supports_bands: bool

    def feature_maps(self, regions: list[np.ndarray], batch_size: int = 16) -> list[Any]:
        """One feature map per region, from one forward pass per region."""
        ...

    def pool_boxes(self, fmap: Any, boxes: list[Box]) -> np.ndarray:
        """(len(boxes), dim) L2-normalised vectors of boxes (fractions of the region) pooled on one feature map."""
        ...

    def embed_bands(self, regions: list[np.ndarray], bands: list[tuple[float, float]],
                    batch_size: int = 16) -> np.ndarray:
        """(len(regions), len(bands), dim): horizontal bands of each region pooled from one pass."""
        ...


@runtime_checkable
class WithBase(Embedder, Protocol):
    base: Embedder

    def project(self, vectors: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Preparable(Protocol):
    def prepare(self, shape: tuple[int, ...]) -> None:
        """Compile (or import) the model for ``shape`` now, rather than at its first run."""
        ...


@runtime_checkable
class Releasable(Protocol):
    def release(self, keep: Callable[[tuple[int, ...]], bool] = ...) -> None:
        """Let go of the compiled shapes ``keep`` does not want (OpenVINO; the disk cache keeps them)."""
        ...


@runtime_checkable
class Backbone(Protocol):
    precision: str
    quantised: str  # an int8 model's weights' digest (its calibration); "" otherwise
    region_batch: int  # its one-pass-per-region batches hold at most this many regions (0: any)

    def run(self, x: np.ndarray, bucket: int = 0) -> np.ndarray: ...


@runtime_checkable
class Exported(Embedder, Protocol):
    backbone: Backbone


@runtime_checkable
class Ensemble(Embedder, Protocol):
    members: list[Any]  # the member embedders
    weights: list[float]
    vectors_graph: Any  # the members' vectors as one compiled model (Preparable), or None


def pools_bands(embedder: object) -> TypeGuard[BandPooler]:
    """Whether an embedder pools boxes and bands from one forward pass per region."""
    return isinstance(embedder, BandPooler) and embedder.supports_bands


def base_of(embedder: Embedder) -> Embedder:
    """The embedder a projection head runs on; the embedder itself otherwise."""
    return embedder.base if isinstance(embedder, WithBase) else embedder
