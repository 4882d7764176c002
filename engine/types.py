"""The data that flows through the pipeline: one frozen dataclass per stage.

clip -> Frame -> Detections -> Region embeddings -> FrameVote -> ProductScore -> MatchResult
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded video frame (RGB, uint8, HxWx3)."""

    index: int
    time_s: float
    image: np.ndarray = field(repr=False, compare=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True)
class Detections:
    """Boxes of one image, in pixels (x0, y0, x1, y1), with scores and labels.

    Modelled on supervision's Detections: adapters build it, boolean masks filter it.
    """

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    labels: tuple[str, ...]  # detector class or garment category per box
    source: str = "detector"  # "detector", "annotation" or "whole-frame"

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.boxes.shape != (n, 4) or len(self.scores) != n or len(self.labels) != n:
            raise ValueError("boxes, scores and labels must have the same length")

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, mask: np.ndarray | slice | list[int]) -> Detections:
        idx = np.arange(len(self))[mask]
        return Detections(
            self.boxes[idx].reshape(-1, 4),
            self.scores[idx],
            tuple(self.labels[i] for i in idx),
            self.source,
        )

    @classmethod
    def empty(cls, source: str = "detector") -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), (), source)

    @classmethod
    def whole(cls, width: int, height: int) -> Detections:
        """A single box covering the whole image: the fallback when nothing is detected."""
        return cls(
            np.array([[0, 0, width, height]], np.float32),
            np.array([0.0], np.float32),
            ("whole frame",),
            "whole-frame",
        )

    @classmethod
    def from_opencv_ssd(
        cls, output: np.ndarray, width: int, height: int, class_names: dict[int, str]
    ) -> Detections:
        """Build from one image's rows of an OpenCV DNN SSD output: [_, class, score, x0, y0, x1, y1]."""
        rows = output.reshape(-1, 7)
        boxes = np.clip(rows[:, 3:7], 0.0, 1.0) * np.array([width, height, width, height])
        labels = tuple(class_names.get(int(c), f"class {int(c)}") for c in rows[:, 1])
        return cls(boxes.astype(np.float32), rows[:, 2].astype(np.float32), labels)

    @classmethod
    def from_torchvision(cls, output: dict[str, Any], class_names: list[str]) -> Detections:
        """Build from one image's torchvision detection dict (boxes, scores, labels tensors)."""
        boxes = output["boxes"].detach().cpu().numpy().astype(np.float32)
        scores = output["scores"].detach().cpu().numpy().astype(np.float32)
        labels = tuple(class_names[int(i)] for i in output["labels"].detach().cpu().numpy())
        return cls(boxes.reshape(-1, 4), scores, labels)

    @property
    def areas(self) -> np.ndarray:
        return (self.boxes[:, 2] - self.boxes[:, 0]).clip(0) * (self.boxes[:, 3] - self.boxes[:, 1]).clip(0)

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {"box": [round(float(v), 1) for v in b], "score": round(float(s), 4), "label": lab}
            for b, s, lab in zip(self.boxes, self.scores, self.labels)
        ]


@dataclass(frozen=True)
class RegionRef:
    """A labelled region of a catalogue image (annotated or detected)."""

    product_id: str
    image_path: str
    box: tuple[float, float, float, float]
    category: str = ""
    instance_id: int = 0
    source: str = "annotation"


@dataclass(frozen=True)
class Product:
    """A catalogue product: its id, display name, images and labelled regions."""

    product_id: str
    name: str
    images: tuple[str, ...]
    regions: tuple[RegionRef, ...] = ()
    category: str = ""

    @property
    def cover_image(self) -> str | None:
        return self.images[0] if self.images else None


@dataclass(frozen=True)
class Neighbour:
    """One catalogue region found near a query region."""

    product_id: str
    similarity: float
    image_path: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class RegionMatch:
    """A query region of a frame and the products nearest to it."""

    box: tuple[float, float, float, float]
    score: float
    label: str
    category: str
    neighbours: tuple[Neighbour, ...]
    match_box: tuple[float, float, float, float] | None = None  # the garment window that matched best

    @property
    def best(self) -> Neighbour | None:
        return self.neighbours[0] if self.neighbours else None


@dataclass(frozen=True)
class FrameVote:
    """A sampled frame, its regions and the product it votes for."""

    frame_index: int
    time_s: float
    regions: tuple[RegionMatch, ...]
    voted_product: str | None
    vote_similarity: float
    region_source: str  # "detector" or "whole-frame"
    product_similarity: dict[str, float] = field(default_factory=dict)  # best similarity per product


@dataclass(frozen=True)
class ProductScore:
    """A product's standing across the clip."""

    product_id: str
    name: str
    votes: int
    vote_share: float
    best_similarity: float
    mean_similarity: float
    frames: tuple[int, ...]
    image_path: str | None  # the product's cover image
    best_image: str | None = None  # the catalogue image whose region matched best in this clip
    best_box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class MatchResult:
    """Everything the pipeline knows about one clip."""

    clip: str
    frames: tuple[FrameVote, ...]
    ranking: tuple[ProductScore, ...]
    timings: dict[str, float]
    settings: dict[str, Any]

    @property
    def top(self) -> ProductScore | None:
        return self.ranking[0] if self.ranking else None

    def rank_of(self, product_id: str) -> int | None:
        """1-based rank of a product, or None when it is not ranked."""
        for i, p in enumerate(self.ranking, 1):
            if p.product_id == product_id:
                return i
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
