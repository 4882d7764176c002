"""The data that flows through the pipeline and its evaluation: one frozen dataclass per stage.

clip -> Frame -> Detections -> RegionMatch (Neighbour -> RegionRef) -> FrameVote -> ProductScore -> MatchResult
-> ClipOutcome, RegionOutcome, Metrics -> EvalReport
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.geometry import Box
from engine.verdict import (  # noqa: F401 - the verdict's records and rules, re-exported where they were
    CONFIDENT_RELATIVE_MARGIN, UNCERTAIN_BELOW, Outcome, Verdict, VerdictSignals, relative_lead, relative_margin,
    verdict_from_evidence, verdict_of)


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
    source: str = "detector"  # "detector", "annotation", "whole-frame" or "garment-head"
    classes: tuple[dict[str, float], ...] = ()  # per box, a category distribution (garment head), or none

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.boxes.shape != (n, 4) or len(self.scores) != n or len(self.labels) != n or len(self.classes) not in (0, n):
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
            tuple(self.classes[i] for i in idx) if self.classes else (),
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
    def from_tf_detection(cls, outputs: tuple[np.ndarray, np.ndarray, np.ndarray, float], size: tuple[int, int],
                          class_names: dict[int, str]) -> Detections:
        """Build from one image's outputs of a TensorFlow object-detection API graph, (boxes, classes, scores,
        count): the first ``count`` of its (ymin, xmin, ymax, xmax) normalised boxes, class ids and scores, in an
        image of ``size`` (width, height)."""
        boxes, classes, scores, count = outputs
        width, height = size
        k = max(0, int(count))
        yxyx = np.asarray(boxes, np.float32).reshape(-1, 4)[:k]
        xyxy = np.clip(yxyx[:, [1, 0, 3, 2]], 0.0, 1.0) * np.array([width, height, width, height], np.float32)
        labels = tuple(class_names.get(int(c), f"class {int(c)}") for c in np.asarray(classes).reshape(-1)[:k])
        return cls(xyxy.astype(np.float32), np.asarray(scores, np.float32).reshape(-1)[:k].copy(), labels)

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


@dataclass(frozen=True)
class RegionRef:
    """A labelled region of a catalogue image (annotated or detected): also what an index item is."""

    product_id: str
    image_path: str
    box: Box
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
    shop: str = ""  # from products.json "shop" (the milvus backend filters by it)

    @property
    def cover_image(self) -> str | None:
        return self.images[0] if self.images else None


@dataclass(frozen=True)
class Neighbour:
    """One catalogue region found near a query region, with its cosine similarity."""

    region: RegionRef
    similarity: float

    @property
    def product_id(self) -> str:
        return self.region.product_id

    @property
    def image_path(self) -> str:
        return self.region.image_path

    @property
    def box(self) -> Box:
        return self.region.box


@dataclass(frozen=True)
class RegionMatch:
    """A query region of a frame and the products nearest to it."""

    box: Box
    score: float
    label: str
    category: str
    neighbours: tuple[Neighbour, ...]
    match_box: Box | None = None  # the garment window that matched best

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
    margin: float = 0.0  # the voted product's similarity minus the runner-up's
    # per ensemble member: each product's best similarity over the frame's regions by that member's cosine alone
    # (what the verdict's member agreement is counted from; empty when not computed)
    member_similarity: tuple[dict[str, float], ...] = ()


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
    best_box: Box | None = None


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

    @property
    def verdict(self) -> Verdict:
        """The verdict of the ranking and its frames (engine.verdict)."""
        return verdict_from_evidence(self.ranking, self.frames)

    def rank_of(self, product_id: str) -> int | None:
        """1-based rank of a product, or None when it is not ranked."""
        for i, p in enumerate(self.ranking, 1):
            if p.product_id == product_id:
                return i
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MatchResult:
        """The inverse of ``to_dict`` (a saved report's clip results are read back as records)."""
        frames = tuple(FrameVote(
            f["frame_index"], f["time_s"],
            tuple(RegionMatch(_box(r["box"]), r["score"], r["label"], r["category"],
                              tuple(Neighbour(_region(n["region"]), n["similarity"]) for n in r["neighbours"]),
                              _box(r.get("match_box"))) for r in f["regions"]),
            f["voted_product"], f["vote_similarity"], f["region_source"], dict(f.get("product_similarity", {})),
            float(f.get("margin", 0.0)), tuple(dict(m) for m in f.get("member_similarity", ())))
            for f in d["frames"])
        ranking = tuple(ProductScore(**{**p, "frames": tuple(p["frames"]), "best_box": _box(p.get("best_box"))})
                        for p in d["ranking"])
        return cls(d["clip"], frames, ranking, dict(d["timings"]), dict(d["settings"]))


def _box(b: Any) -> Box | None:
    return None if b is None else tuple(float(v) for v in b)  # type: ignore[return-value]


def _region(r: dict[str, Any]) -> RegionRef:
    return RegionRef(r["product_id"], r["image_path"], _box(r["box"]), r.get("category", ""),  # type: ignore[arg-type]
                     int(r.get("instance_id", 0)), r.get("source", "annotation"))


@dataclass(frozen=True)
class ClipOutcome:
    """One evaluated clip: its truth, where the truth ranked, and the full match result."""

    video_id: str
    truth: str | None
    truth_rank: int | None  # 1-based; None when the truth is not ranked at all
    top: str | None
    result: MatchResult

    @property
    def correct(self) -> bool:
        return self.truth_rank == 1


@dataclass(frozen=True)
class OpenSetOutcome:
    """A clip matched with its own product removed from the catalogue (``evaluate --open-set``): any answer is
    wrong, and the verdict must not be confident."""

    video_id: str
    removed: str  # the clip's product, absent from the catalogue searched
    top: str | None
    result: MatchResult


@dataclass(frozen=True)
class RegionOutcome:
    """One annotated product box of a clip frame, searched on its own: where its true product ranked."""

    video_id: str
    frame_index: int
    box: Box
    truth: str
    rank: int | None  # 1-based rank of the true product among all products; None if it has no regions
    top: str | None


@dataclass(frozen=True)
class Metrics:
    """Clip top-1, top-5 and mean reciprocal rank, and region-level top-1 (feature quality)."""

    clips: int = 0
    top1: float = 0.0
    top5: float = 0.0
    mrr: float = 0.0
    region_boxes: int = 0
    region_top1: float = 0.0
    vote_share: float = 0.0  # the true product's mean share of the sampled frames' votes


@dataclass(frozen=True)
class EvalReport:
    """An evaluation of one data set under one set of settings (``python -m engine evaluate``)."""

    dataset: str
    settings: dict[str, Any]  # Settings.flat()
    metrics: Metrics
    clips: tuple[ClipOutcome, ...]
    regions: tuple[RegionOutcome, ...] = ()
    skipped: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    index: dict[str, Any] = field(default_factory=dict)  # the index's summary (see engine.index.store)
    created_at: str = ""
    version: int = 2
    open_set: tuple[OpenSetOutcome, ...] = ()  # with --open-set: each clip with its product removed

    def to_dict(self) -> dict[str, Any]:
        """The report, with each clip's verdict outcome beside it ("verdicts": derived, not read back)."""
        return {**asdict(self), "verdicts": {
            "clips": {o.video_id: o.result.verdict.level for o in self.clips},
            "open_set": {o.video_id: o.result.verdict.level for o in self.open_set}}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        clips = tuple(ClipOutcome(**{**c, "result": MatchResult.from_dict(c["result"])}) for c in d["clips"])
        regions = tuple(RegionOutcome(**{**r, "box": _box(r["box"])}) for r in d.get("regions", ()))
        return cls(d["dataset"], dict(d["settings"]), Metrics(**d["metrics"]), clips, regions,
                   tuple(d.get("skipped", ())), tuple(d.get("problems", ())), dict(d.get("index", {})),
                   d.get("created_at", ""), int(d.get("version", 2)),
                   tuple(OpenSetOutcome(**{**c, "result": MatchResult.from_dict(c["result"])})
                         for c in d.get("open_set", ())))
