"""The closed sets of values a setting takes (engine.config), one Enum each.

They are StrEnums: a member is its value as text too (``f"{Device.CPU}"`` is "cpu", as the plain strings they replaced
were), so index folder names, cache keys, reports and comparisons with strings are what they were.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import ClassVar


class Windows(StrEnum):
    """How a detected region is searched for garments (see engine.pipeline.windows).

    With a garment head (``models.garment_model``), ``pooled`` takes its boxes from one pass per region and
    every other strategy crops and embeds them.
    """

    WHOLE = "whole"  # the detected region alone (the plain baseline)
    EXHAUSTIVE = "exhaustive"  # every garment window cropped and embedded (accurate, slowest)
    REFINED = "refined"  # every window pooled from one pass per region, the best refine_top embedded exactly
    POOLED = "pooled"  # every window pooled from one pass per region (fastest)
    HYBRID = "hybrid"  # the region cropped and embedded exactly, its windows pooled from one pass (the default)
    POSE = "pose"  # the region and upper-, lower- and full-body regions from its keypoints (MoveNet), cropped:
    # 4 crops per person; the hybrid windows where no shoulders or hips are found
    HYBRID_POSE = "hybrid-pose"  # the hybrid windows and the three body regions from keypoints, cropped: 4 crops and
    # 17 pooled bands per person; the hybrid windows alone where no shoulders or hips are found
    HYBRID_POSE_POOLED = "hybrid-pose-pooled"  # the same with the body regions pooled from the bands' pass: the
    # default's one crop and one pass per person, and a keypoint call


class Device(str):
    """Where the models run: "auto" (CUDA when torch sees a GPU, else the CPU), "cpu", "cuda", or "cuda:N" (one GPU of
    several). Not an Enum, since "cuda:N" is open; a value outside these raises ValueError."""

    AUTO: ClassVar[str] = "auto"
    CPU: ClassVar[str] = "cpu"
    CUDA: ClassVar[str] = "cuda"
    ALLOWED: ClassVar[str] = "auto, cpu, cuda or cuda:N"

    def __new__(cls, value: object) -> Device:
        text = str(value).strip().lower()
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
            raise ValueError(f"{value!r}: expected {cls.ALLOWED}")
        return super().__new__(cls, text)


class Runtime(StrEnum):
    """What runs the embedder (engine.models.runtime)."""

    AUTO = "auto"  # the fastest installed on the CPU (docs/performance-cpu.md), torch on a GPU
    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class Precision(StrEnum):
    """OpenVINO's precision (engine.models.openvino_rt)."""

    AUTO = "auto"  # f32: bf16, and int8 without VNNI, lose accuracy (docs/performance-cpu.md)
    BF16 = "bf16"
    INT8 = "int8"  # quantised with NNCF on first use
    F32 = "f32"


class CategorySource(StrEnum):
    """Where a garment window's category comes from."""

    FUSED = "fused"  # the garment head's and the k nearest catalogue regions', fused
    HEAD = "head"
    KNN = "knn"
    FAMILY = "family"  # a linear garment-family head fitted on the catalogue's regions (engine.pipeline.families)


class ProductPooling(StrEnum):
    """A product's similarity to a window."""

    MAX = "max"  # its best catalogue region
    MEAN = "mean"  # the mean over its catalogue regions: every view must fit, so one with many generic views is no hub


class RankBy(StrEnum):
    SIMILARITY = "similarity"  # evidence summed over frames
    VOTES = "votes"  # one vote per frame


class IndexBackend(StrEnum):
    ANNOY = "annoy"
    FAISS = "faiss"  # for very large catalogues
    MILVUS = "milvus"  # a Milvus Lite file under the home, or a server (README: Deployment)


class Editing(StrEnum):
    """Whether the app may add, remove, rebuild, correct and train (docs/security.md)."""

    AUTO = "auto"  # on only while the server listens on localhost alone
    ON = "on"
    OFF = "off"


class CorrectionRegions(StrEnum):
    """What a correction stores of each frame (engine.pipeline.correcting)."""

    PRODUCT = "product"  # the detected region that best matches the corrected product
    REGIONS = "regions"  # every detected region
    WINDOWS = "windows"  # every garment window of every region


REGION_CHOICES = tuple(r.value for r in CorrectionRegions)
