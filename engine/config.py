"""Settings, in six groups a person can hold in their head: paths, models, detection, search, index, access.

Every field can come from the environment as ``LIVEMATCH_<FIELD>`` (field names are unique across the
groups, so ``LIVEMATCH_FRAMES=6`` or ``LIVEMATCH_INDEX_BACKEND=faiss`` need no group prefix). The few
``LIVEMATCH_*`` variables that are not fields are listed in ``OTHER_VARIABLES`` below, so that this module names
every one; ``environment_variables()`` gives them all with what each sets.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any


def cache_home() -> Path:
    """Where caches, indexes, reports and trained models live: ``$LIVEMATCH_HOME``."""
    return Path(os.environ.get("LIVEMATCH_HOME", Path.home() / ".cache" / "livematch"))


def milvus_uri_from_env() -> str:
    """``LIVEMATCH_MILVUS_URI`` now (the ``milvus_uri`` field's variable): the URI when settings leave it empty."""
    return os.environ.get("LIVEMATCH_MILVUS_URI", "")


class Windows(str, Enum):
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


@dataclass(frozen=True)
class PathSettings:
    catalogue: str = ""  # dataset folder; empty means the built-in demo
    index_dir: str = ""  # where the index lives; empty means <home>/index/<catalogue hash>


@dataclass(frozen=True)
class ModelSettings:
    detector: str = "ssd-mobilenet-v2-coco"
    embedder: str = "efficientnet-lite012-gem-224x176"  # Lite0+1+2 ensemble at 224x176 (engine.models.ensemble)
    head: str = ""  # projection head checkpoint from train-embedding ("" = the backbone's own features)
    garment_model: str = ""  # garment region head from train-garments ("" = searched garment windows)
    domain_mean: str = "auto"  # livestream mean queries are centred on: "auto" (shipped per embedder), "none", a .npy
    device: str = "auto"  # "auto", "cpu" or "cuda"
    runtime: str = "auto"  # embedder runtime: "auto" (the fastest installed on the CPU), "torch", "onnxruntime", "openvino"
    # OpenVINO: "auto" (f32: bf16, and int8 without VNNI, lose dev region top-1), "bf16", "int8" or "f32"
    precision: str = "auto"
    calibration: str = ""  # int8: the catalogue folder it is calibrated on ("": the configured catalogue, else the demo)
    batch_size: int = 8  # on 2-core CPUs batches of 8 embed fastest (see python -m engine bench)


@dataclass(frozen=True)
class DetectionSettings:
    frames: int = 10  # frames sampled evenly from a clip
    stream_every: float = 2.0  # live streams: seconds of stream between sampled frames
    det_threshold: float = 0.4
    side_by_side: bool = True  # detect on portrait frames set side by side in pairs (half the SSD passes)
    max_regions: int = 2  # detector regions kept per frame, highest score first
    min_region_area: float = 0.02  # ignore boxes smaller than this fraction of the frame (avatars, passers-by)


@dataclass(frozen=True)
class SearchSettings:
    windows: Windows = Windows.HYBRID
    refine_top: int = 3  # windows embedded exactly per region with Windows.REFINED
    window_stride: float = 0.2  # Windows.EXHAUSTIVE: step between garment windows (0.2: 10 per region; 0.1: 18)
    garment_top: int = 3  # garment boxes per region kept by the garment head
    neighbours: int = 50  # regions fetched from the index per query window
    region_candidates: int = 10  # products kept per region for display and inspection
    category_weight: float = 0.0  # similarity penalty for catalogue regions of another (merged) category
    category_source: str = "fused"  # a window's category: "fused" (head + k-NN), "head", "knn", or "family" (a linear
    # garment-family head fitted on the catalogue's regions: engine.pipeline.families)
    example_offset: float = 0.08  # a livestream example's (correction's) cosine counts this much less: examples share
    # the query domain, so other clips' frames resemble them more than any catalogue photo (README, Results)
    example_bound: float = 0.93  # a livestream example counts only for query windows at least this similar to it
    # (cosine, in the query domain): near-duplicates of the corrected frames, not another product's clip in the same
    # room; chosen leave-one-clip-out with `python -m engine eval-corrections` (docs/app-behaviour.md)
    use_examples: bool = True  # search the livestream examples (corrections); evaluate turns it off (no leakage)
    product_pooling: str = "mean"  # a product's similarity to a window: "max" (its best catalogue region) or "mean"
    # (the mean over its catalogue regions: every view must fit, so a product with many generic views is no hub)
    rank_by: str = "similarity"  # clip ranking: "similarity" (evidence summed over frames) or "votes" (one per frame)
    top_k: int = 5  # products shown (display only)
    shop: str = ""  # search only this shop's products ("" = every shop)


@dataclass(frozen=True)
class IndexSettings:
    index_backend: str = "annoy"  # "annoy", "faiss" for very large catalogues, or "milvus" (see README: Deployment)
    milvus_uri: str = ""  # milvus backend: "" = a Milvus Lite file under the home, or http://host:19530
    n_trees: int = 50
    search_k: int = -1  # -1: Annoy's default (n_trees * n)
    seed: int = 0


@dataclass(frozen=True)
class AccessSettings:
    """What a visitor of the app may do (docs/security.md). The command line is the operator's and ignores them."""

    catalogue_roots: str = ""  # folders (os.pathsep- or comma-separated) under which the app may open a catalogue,
    # besides the built-in demo, its editable copies and LIVEMATCH_CATALOGUE itself
    editing: str = "auto"  # add, remove, rebuild, correct, train in the app: "on", "off", or "auto" (on only while
    # the server listens on localhost alone)
    stream_allow: str = ""  # stream addresses the app may open, comma-separated scheme://host patterns
    # ("https://*.example.com", "rtsp://10.0.0.5", "rtsp://10.1.0.0/16", "https://*"); "" = any address while
    # the server listens on localhost alone, none beyond it


GROUPS = ("paths", "models", "detection", "search", "index", "access")


@dataclass(frozen=True)
class Settings:
    """Every knob of the pipeline, grouped, with the defaults the CLI and evaluation use."""

    paths: PathSettings = field(default_factory=PathSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    access: AccessSettings = field(default_factory=AccessSettings)

    @classmethod
    def field_names(cls) -> dict[str, str]:
        """Flat field name -> its group."""
        return {f.name: g for g in GROUPS for f in fields(getattr(cls(), g))}

    def with_(self, **flat: Any) -> Settings:
        """A copy with fields changed by their flat names (``frames=6``); None values are ignored."""
        owners = self.field_names()
        unknown = set(flat) - set(owners)
        if unknown:
            raise KeyError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        changes: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            if value is not None:
                changes.setdefault(owners[name], {})[name] = _coerce(name, value)
        return replace(self, **{g: replace(getattr(self, g), **c) for g, c in changes.items()})

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then ``LIVEMATCH_*`` environment variables, then explicit overrides (flat names)."""
        env = {name: os.environ[f"LIVEMATCH_{name.upper()}"] for name in cls.field_names()
               if f"LIVEMATCH_{name.upper()}" in os.environ}
        return cls().with_(**env).with_(**overrides)

    def flat(self) -> dict[str, Any]:
        """Every field by its flat name (enums as their values): the form reports and keys use."""
        out: dict[str, Any] = {}
        for g in GROUPS:
            out.update({k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(getattr(self, g)).items()})
        return out

    @classmethod
    def from_flat(cls, data: dict[str, Any]) -> Settings:
        """The inverse of ``flat``; unknown keys (from another version) are ignored."""
        known = cls.field_names()
        return cls().with_(**{k: v for k, v in data.items() if k in known})

    @property
    def home(self) -> Path:
        return cache_home()


def _coerce(name: str, value: Any) -> Any:
    """A value of the field's own type; text from the environment or the command line is parsed."""
    default = getattr(getattr(Settings(), Settings.field_names()[name]), name)
    if isinstance(default, Enum):
        return type(default)(value.value if isinstance(value, Enum) else str(value).strip().lower())
    if isinstance(default, bool):  # bool("0") would be True
        return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
    return type(default)(value)


# The search presets the app offers. "Standard" is the default strategy, the one the command line and evaluation use
# (its time per clip: python -m engine bench, docs/performance-cpu.md); "Exhaustive" crops and embeds every garment
# window, about twice the work, and ranked the same 6 of 7 development clips first (docs/accuracy.md). APP_PRESET names
# the app's choice in one place, should it ever differ from the default.
SEARCH_PRESETS: dict[str, Windows] = {"Standard": Windows.HYBRID, "Exhaustive": Windows.EXHAUSTIVE}
APP_PRESET = "Standard"


def preset_of(settings: Settings) -> str:
    """The preset whose strategy the settings use ("Standard" for any strategy but exhaustive)."""
    return "Exhaustive" if settings.search.windows == Windows.EXHAUSTIVE else "Standard"


# The LIVEMATCH_* variables that are not Settings fields: each is read where it is used (a model's weights file by
# its builder, the Milvus token by the client, ...), and named here, the one list of them. tests/test_settings.py
# checks that no module reads a LIVEMATCH_* variable that is neither a field nor listed here.
OTHER_VARIABLES: dict[str, str] = {
    "LIVEMATCH_HOME": "caches, indexes, reports and trained models (default ~/.cache/livematch): cache_home()",
    "LIVEMATCH_DEMO_DIR": "where the built-in demo is generated (default <home>/demo)",
    "LIVEMATCH_CPU_THREADS": "threads of the embedder's runtime (a Ray worker sets it to its share of the cores)",
    "LIVEMATCH_DOWNLOAD_LIMIT_MB": "the largest clip fetched from a server without byte ranges (default: the app's "
                                   "upload limit, server.maxUploadSize): engine.io.fetch",
    "LIVEMATCH_MILVUS_TOKEN": "the Milvus server's token, when it wants one",
    "LIVEMATCH_MILVUS_TIMEOUT": "seconds for connecting to Milvus and for every call (default 10)",
    "LIVEMATCH_SSD300_WEIGHTS": "the weights file of the ssd300-vgg16 detector (torchvision's)",
    "LIVEMATCH_RESNET50_WEIGHTS": "the weights file of the resnet50 embedder (torchvision's)",
    "LIVEMATCH_PROGRESS": "1: progress bars on the command line even when stderr is not a terminal",
}
# Read by the tests and CI only (tests/, .ci/run), never by the library or the app.
TEST_VARIABLES: dict[str, str] = {
    "LIVEMATCH_REQUIRE_BROWSER": "1: the browser tests fail instead of skipping when chromium is missing",
    "LIVEMATCH_REQUIRE_SCALE": "1: the Milvus and Ray tests fail instead of skipping when their packages are missing",
    "LIVEMATCH_E2E_SCREENSHOTS": "a folder: the browser tests save their screenshots there",
    "LIVEMATCH_TESTS_HOME": "set by tests/conftest.py: the test run's own home, kept when the file is imported again",
}


def environment_variables() -> dict[str, str]:
    """Every LIVEMATCH_* variable the library and the app read, with what it sets: one per Settings field (its
    group and default), then the others."""
    defaults = Settings().flat()
    fields_ = {f"LIVEMATCH_{name.upper()}": f"setting {group}.{name} (default {defaults[name]!r})"
               for name, group in Settings.field_names().items()}
    return {**fields_, **OTHER_VARIABLES}
