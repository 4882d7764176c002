"""Settings, in six groups a person can hold in their head: paths, models, detection, search, index, access.

Every field can come from the environment as ``LIVEMATCH_<FIELD>`` (field names are unique across the
groups, so ``LIVEMATCH_FRAMES=6`` or ``LIVEMATCH_INDEX_BACKEND=faiss`` need no group prefix) and, but for the app's
access group, from the command line as ``--<field>`` (engine.cli.common generates the options from the fields: their
type, their help from ``setting(help=...)``, an Enum's values as the choices). Every closed set of values is an
Enum (engine.choices). The few ``LIVEMATCH_*`` variables that are not fields are listed in ``OTHER_VARIABLES`` below and read
through ``variable()``, so that this module reads every one; ``environment_variables()`` gives them all.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

from engine.choices import (CategorySource, Device, Editing, IndexBackend, Precision,
                            ProductPooling, RankBy, Runtime, Windows)
from engine.errors import EngineError


class SettingError(EngineError, ValueError):
    """A setting's value is not one it can take (from the environment, the command line or code)."""


def cache_home() -> Path:
    """Where caches, indexes, reports and trained models live: ``$LIVEMATCH_HOME``."""
    return Path(os.environ.get("LIVEMATCH_HOME", Path.home() / ".cache" / "livematch"))


def setting(default: Any, help: str, *, flags: tuple[str, ...] = (), unset: str = "") -> Any:  # noqa: A002
    """A settings field: its default, its help (the command line's and ``environment_variables()``'), its options
    (default ``--<name with dashes>``) and, for an empty default, what empty means."""
    return field(default=default, metadata={"help": help, "flags": flags, "unset": unset})


@dataclass(frozen=True)
class PathSettings:
    catalogue: str = setting("", "catalogue folder (Tianchi layout or a folder per product)",
                             unset="the built-in demo")
    index_dir: str = setting("", "index folder", unset="<home>/index/<catalogue hash>, $LIVEMATCH_HOME")


@dataclass(frozen=True)
class ModelSettings:
    detector: str = setting("ssd-mobilenet-v2-coco", "ssd-mobilenet-v2-coco (on OpenCV DNN), "
                            "ssd-mobilenet-v2-coco-openvino (the same on OpenVINO) or ssd300-vgg16")
    embedder: str = setting("efficientnet-lite012-gem-224x176", "efficientnet-lite012-gem (the Lite0+1+2 ensemble), "
                            "efficientnet-lite02-gem, efficientnet-lite0-gem, efficientnet-lite1-gem, "
                            "efficientnet-lite2-gem, efficientnet-lite0, resnet50, or ensemble:NAME[*W]+NAME[*W]")
    head: str = setting("", "projection head checkpoint from train-embedding", unset="none, the backbone's features")
    garment_model: str = setting("", "garment head checkpoint from train-garments: learned garment regions",
                                 unset="none, searched garment windows")
    # Not a closed set: "auto" (the embedder's shipped mean), "none", or the path of any .npy file, so it stays text;
    # engine.models.domain.resolve reads it and says what is wrong with a bad one.
    domain_mean: str = setting("auto", "livestream mean queries are centred on: auto (the embedder's shipped mean; "
                               "the ensemble has none: no centring), none, or a .npy file")
    device: Device = setting(Device.AUTO, "where the models run: auto, cpu, cuda or cuda:N (one GPU of several)")
    runtime: Runtime = setting(Runtime.AUTO, "embedder runtime (auto: the fastest installed on the CPU, torch on a "
                               "GPU)")
    precision: Precision = setting(Precision.AUTO, "OpenVINO's precision (auto: f32, as bf16, and int8 without VNNI, "
                                   "lose accuracy; int8 models are quantised with NNCF on first use: "
                                   "docs/performance-cpu.md)")
    calibration: str = setting("", "int8: the catalogue folder whose shop photos calibrate it",
                               unset="the catalogue served; the generated demo when there is none")
    batch_size: int = setting(8, "regions embedded per batch (python -m engine bench measures each size)")


@dataclass(frozen=True)
class DetectionSettings:
    frames: int = setting(10, "frames sampled evenly per clip")
    stream_every: float = setting(2.0, "live streams and timelines: seconds between sampled frames",
                                  flags=("--every", "--stream-every"))
    det_threshold: float = setting(0.4, "detection score threshold")
    side_by_side: bool = setting(True, "detect on portrait frames set side by side in pairs (half the SSD passes)")
    max_regions: int = setting(2, "detector regions kept per frame, highest score first")
    min_region_area: float = setting(0.02, "boxes smaller than this fraction of the frame are ignored (avatars, "
                                     "passers-by)")


@dataclass(frozen=True)
class SearchSettings:
    windows: Windows = setting(Windows.HYBRID, "how regions are searched for garments (whole: the detected regions "
                               "alone, the plain baseline)")
    refine_top: int = setting(3, "with --windows refined: windows re-embedded exactly per region")
    window_stride: float = setting(0.2, "with --windows exhaustive: step between garment windows (0.2: 10 per region; "
                                   "0.1: 18)")
    garment_top: int = setting(3, "garment boxes per region kept by the garment head")
    neighbours: int = setting(50, "regions fetched from the index per query window")
    region_candidates: int = setting(10, "products kept per region for display and inspection")
    category_weight: float = setting(0.0, "similarity penalty for catalogue regions of another category (needs "
                                     "--garment-model, or --category-source family)")
    category_source: CategorySource = setting(CategorySource.FUSED, "where a garment window's category comes from: "
                                              "fused (head + k-NN), head, knn, or family (a linear garment-family head "
                                              "fitted on the catalogue's regions)")
    # Examples share the query domain, so other clips' frames resemble them more than any catalogue photo: their
    # cosine counts less, and only for near-duplicates of the corrected frames (the values were chosen
    # leave-one-clip-out with `python -m engine eval-corrections`: docs/app-behaviour.md).
    example_offset: float = setting(0.08, "a livestream example's (correction's) similarity counts this much less")
    example_bound: float = setting(0.93, "a livestream example counts only for query windows at least this similar "
                                   "to it (cosine)")
    use_examples: bool = setting(True, "search the livestream examples (corrections); evaluate turns it off (no "
                                 "leakage)")
    product_pooling: ProductPooling = setting(ProductPooling.MEAN, "a product's similarity to a window: its best "
                                              "catalogue region (max) or the mean over them")
    rank_by: RankBy = setting(RankBy.SIMILARITY, "rank products by evidence summed over frames (similarity) or by "
                              "one vote per frame")
    top_k: int = setting(5, "products shown (display only)")
    shop: str = setting("", "search only this shop's products (products.json \"shop\")", unset="every shop")


@dataclass(frozen=True)
class IndexSettings:
    index_backend: IndexBackend = setting(IndexBackend.ANNOY, "the index: annoy, faiss for very large catalogues, or "
                                          "milvus (README: Deployment)")
    milvus_uri: str = setting("", "milvus backend: the server, http://host:19530",
                              unset="a Milvus Lite file under the home")
    n_trees: int = setting(50, "Annoy's trees")
    search_k: int = setting(-1, "Annoy's search_k (-1: n_trees * n)")
    seed: int = setting(0, "the index's random seed")


@dataclass(frozen=True)
class AccessSettings:
    """What a visitor of the app may do (docs/security.md). The command line is the operator's and ignores them:
    they have no options, only their environment variables."""

    catalogue_roots: str = setting("", "folders (os.pathsep- or comma-separated) under which the app may open a "
                                   "catalogue, besides the built-in demo, its editable copies and "
                                   "LIVEMATCH_CATALOGUE itself", unset="none")
    editing: Editing = setting(Editing.AUTO, "add, remove, rebuild, correct, train in the app (auto: on only while "
                               "the server listens on localhost alone)")
    stream_allow: str = setting("", "stream addresses the app may open, comma-separated scheme://host patterns "
                                "(\"https://*.example.com\", \"rtsp://10.0.0.5\", \"rtsp://10.1.0.0/16\", \"https://*\")",
                                unset="any address while the server listens on localhost alone, none beyond it")


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

    @classmethod
    def settings_fields(cls) -> dict[str, tuple[str, Any, type]]:
        """Flat field name -> (its group, its dataclass field, its type): what values are coerced to, and what the
        command line's options and ``environment_variables()`` are made from."""
        return _settings_fields()

    def with_(self, **flat: Any) -> Settings:
        """A copy with fields changed by their flat names (``frames=6``); None values are ignored. A value of the
        wrong kind raises SettingError, which names what the field takes."""
        return self._with(flat, "{name}")

    def _with(self, flat: dict[str, Any], label: str) -> Settings:
        owners = self.field_names()
        unknown = set(flat) - set(owners)
        if unknown:
            raise KeyError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        changes: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            if value is not None:
                changes.setdefault(owners[name], {})[name] = _coerce(name, value, label)
        return replace(self, **{g: replace(getattr(self, g), **c) for g, c in changes.items()})

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then ``LIVEMATCH_*`` environment variables, then explicit overrides (flat names)."""
        env = {name: os.environ[f"LIVEMATCH_{name.upper()}"] for name in cls.field_names()
               if f"LIVEMATCH_{name.upper()}" in os.environ}
        return cls()._with(env, "LIVEMATCH_{NAME}").with_(**overrides)

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


@functools.cache
def _settings_fields() -> dict[str, tuple[str, Any, type]]:
    out = {}
    for g in GROUPS:
        group = type(getattr(Settings(), g))
        hints = get_type_hints(group)
        out.update({f.name: (g, f, hints[f.name]) for f in fields(group)})
    return out


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
KINDS = {int: "a whole number", float: "a number", bool: f"one of {', '.join(TRUE_WORDS + FALSE_WORDS[:-1])}",
         Device: Device.ALLOWED}


def _coerce(name: str, value: Any, label: str = "{name}") -> Any:
    """A value of the field's own type; text from the environment or the command line is parsed. ``label`` says
    where the value came from in the error ("{name}" or "LIVEMATCH_{NAME}")."""
    kind = Settings.settings_fields()[name][2]
    if kind is str:
        return str(value)
    text = str(value.value if isinstance(value, Enum) else value).strip()
    try:
        if issubclass(kind, Enum):
            return kind(text.lower())
        if kind is bool:  # bool("0") would be True
            if isinstance(value, bool):
                return value
            if text.lower() not in TRUE_WORDS + FALSE_WORDS:
                raise ValueError(text)
            return text.lower() in TRUE_WORDS
        return kind(value if isinstance(value, (int, float)) and not isinstance(value, bool) else text)
    except (TypeError, ValueError):
        allowed = (f"one of {', '.join(m.value for m in kind)}" if issubclass(kind, Enum)
                   else KINDS.get(kind, kind.__name__))
        where = label.format(name=name, NAME=name.upper())
        raise SettingError(f"{where}={text!r}: expected {allowed}") from None


# The search presets the app offers. "Standard" is the default strategy, the one the command line and evaluation use;
# "Exhaustive" crops and embeds every garment window (the time per clip of each: python -m engine bench,
# docs/performance-cpu.md; their accuracy: docs/accuracy.md). APP_PRESET names the app's choice in one place, should it
# ever differ from the default.
SEARCH_PRESETS: dict[str, Windows] = {"Standard": Windows.HYBRID, "Exhaustive": Windows.EXHAUSTIVE}
APP_PRESET = "Standard"


def preset_of(settings: Settings) -> str:
    """The preset whose strategy the settings use ("Standard" for any strategy but exhaustive)."""
    return "Exhaustive" if settings.search.windows == Windows.EXHAUSTIVE else "Standard"


# The LIVEMATCH_* variables that are not Settings fields: each is read through ``variable()`` (or a function below)
# when it is used (a model's weights file by its builder, the Milvus token by the client, ...), and named here, the
# one list of them. tests/test_settings.py checks that no module reads a LIVEMATCH_* variable that is neither a field
# nor listed here, and that no module but this one reads one from os.environ.
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
    "LIVEMATCH_REQUIRE_GIT": "1: the screenshots' age test fails instead of skipping outside a git clone",
    "LIVEMATCH_E2E_SCREENSHOTS": "a folder: the browser tests save their screenshots there",
    "LIVEMATCH_TESTS_HOME": "set by tests/conftest.py: the test run's own home, kept when the file is imported again",
}


def environment_variables() -> dict[str, str]:
    """Every LIVEMATCH_* variable the library and the app read, with what it sets: one per Settings field (its
    group, default and help), then the others."""
    defaults = Settings().flat()
    fields_ = {f"LIVEMATCH_{name.upper()}": f"setting {group}.{name} (default {defaults[name]!r}): {f.metadata['help']}"
               for name, (group, f, _) in Settings.settings_fields().items()}
    return {**fields_, **OTHER_VARIABLES}


def variable(name: str, default: str = "") -> str:
    """The value of one of the ``OTHER_VARIABLES`` (``default`` when unset), read now: the one place they are read."""
    if name not in OTHER_VARIABLES:
        raise KeyError(f"{name} is not declared in engine.config.OTHER_VARIABLES")
    return os.environ.get(name, default)


def field_variable(name: str) -> str | None:
    """The text of the settings field ``name``'s variable (``LIVEMATCH_<NAME>``) now, None when it is unset: for code
    that holds Settings made without the environment (the Milvus URI of an index opened by path)."""
    if name not in Settings.field_names():
        raise KeyError(f"unknown setting: {name}")
    return os.environ.get(f"LIVEMATCH_{name.upper()}")


def set_from_environment(name: str) -> bool:
    """Whether the environment sets the settings field ``name`` (``LIVEMATCH_<NAME>``), rather than its default."""
    return field_variable(name) is not None


def cpu_threads() -> int | None:
    """``LIVEMATCH_CPU_THREADS`` as a count (at least 1), None when it is unset or not a number: a Ray worker holds
    fewer cores than the machine and says how many here."""
    raw = variable("LIVEMATCH_CPU_THREADS").strip()
    return max(1, int(raw)) if raw.isdigit() else None


def progress_forced() -> bool:
    """``LIVEMATCH_PROGRESS=1``: progress bars on the command line even when stderr is not a terminal."""
    return variable("LIVEMATCH_PROGRESS") == "1"
