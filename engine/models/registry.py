"""Where every embedder and detector registers itself, by name, where it is defined (as timm's ``@register_model``).

An embedder is registered with its :class:`EmbedderConfig`: its name, its vector's dimension, its input size and the
key its vectors are cached under (``key_format``, ``{size}`` standing for the input size). The input size lives in the
config, not in a class: ``config.at((224, 176))`` is the same backbone and pooling at another input, named
``<family>-224x176`` and keyed with ``224x176``, so indexes, caches and exports never mix two sizes. A name with a
``-HxW`` suffix that is not registered itself is read as its family's config at that size.

``engine.models.create_embedder`` builds from here; this module only records (it imports no model code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar

from engine.errors import ModelError

T = TypeVar("T", bound=type)
SIZED = re.compile(r"(?P<family>.+)-(?P<h>\d{2,4})x(?P<w>\d{2,4})")


@dataclass(frozen=True)
class EmbedderConfig:
    """A single backbone's configuration. ``family``: its name at ``bare_hw`` (any other size adds ``-HxW``; None:
    every size is named); ``key_format``: its key, ``{size}`` replaced by ``HxW``; ``variant``: the EfficientNet-Lite
    variant where the family has several."""

    family: str
    key_format: str
    dim: int
    input_hw: tuple[int, int] = (288, 224)
    bare_hw: tuple[int, int] | None = (288, 224)
    variant: int = 0

    @property
    def size(self) -> str:
        return f"{self.input_hw[0]}x{self.input_hw[1]}"

    @property
    def name(self) -> str:
        return self.family if self.input_hw == self.bare_hw else f"{self.family}-{self.size}"

    @property
    def key(self) -> str:
        return self.key_format.format(size=self.size)

    def at(self, input_hw: tuple[int, int] | None) -> EmbedderConfig:
        """The same backbone and pooling at another (height, width) input."""
        if input_hw is None:
            return self
        try:
            hw = tuple(int(v) for v in input_hw)
        except (TypeError, ValueError):
            hw = ()
        if len(hw) != 2 or min(hw) < 32 or max(hw) > 2048:
            raise ModelError(f"input_size must be (height, width), each 32 to 2048 pixels, not {input_hw!r}")
        return replace(self, input_hw=(hw[0], hw[1]))


@dataclass(frozen=True)
class EnsembleConfig:
    """A named ensemble: (member family, weight) pairs, every member at ``input_hw``; named as a config is."""

    family: str
    members: tuple[tuple[str, float], ...]
    input_hw: tuple[int, int] = (288, 224)
    bare_hw: tuple[int, int] | None = (288, 224)

    @property
    def name(self) -> str:
        return self.family if self.input_hw == self.bare_hw else f"{self.family}-{self.input_hw[0]}x{self.input_hw[1]}"


@dataclass(frozen=True)
class Registered:
    """A registered embedder: its config, what builds it (``build(config, device=...)``) and the runtimes it runs on
    (``exported``: builds it on ONNX Runtime or OpenVINO from an ONNX export, where one is registered)."""

    config: EmbedderConfig
    build: Callable[..., Any]
    runtimes: tuple[str, ...] = ("torch",)
    exported: Callable[..., Any] | None = None

    @property
    def all_runtimes(self) -> tuple[str, ...]:
        """Where it runs: its builder's runtimes, and ONNX Runtime and OpenVINO where it has an export."""
        return self.runtimes + (("onnxruntime", "openvino") if self.exported is not None else ())


_embedders: dict[str, Registered] = {}
_ensembles: dict[str, EnsembleConfig] = {}
_detectors: dict[str, Callable[..., Any]] = {}


def register_embedder(*configs: EmbedderConfig, runtimes: tuple[str, ...] = ("torch",)) -> Callable[[T], T]:
    """Class decorator: register the class as the builder of each config (``cls(config, device=..., runtime=...,
    precision=..., calibration=...)``), run by ``runtimes``."""
    def register(cls: T) -> T:
        for config in configs:
            _embedders[config.name] = Registered(config, cls, runtimes)
        return cls
    return register


def register_export(build: Callable[..., Any]) -> Callable[[T], T]:
    """Class decorator: the class runs every embedder registered with ``build`` from its ONNX export."""
    def register(cls: T) -> T:
        for name, entry in list(_embedders.items()):
            if entry.build is build:
                _embedders[name] = replace(entry, exported=cls)
        return cls
    return register


def register_ensemble(config: EnsembleConfig) -> EnsembleConfig:
    _ensembles[config.name] = config
    return config


def register_detector(cls: T) -> T:
    """Class decorator: register the class as the detector of its ``name`` (built with keyword arguments only)."""
    _detectors[cls.name] = cls
    return cls


def embedder_entry(name: str, input_size: tuple[int, int] | None = None) -> Registered | None:
    """The registration of a single backbone's name (a family's name alone: its registered size; ``<family>-HxW``:
    its family at that size), at ``input_size`` when given; None for any other name."""
    entry = _embedders.get(name) or next((e for e in _embedders.values() if e.config.family == name), None)
    if entry is None and (m := SIZED.fullmatch(name)):
        family = next((e for e in _embedders.values() if e.config.family == m["family"]), None)
        if family is not None:
            entry = replace(family, config=family.config.at((int(m["h"]), int(m["w"]))))
    if entry is None or input_size is None:
        return entry
    return replace(entry, config=entry.config.at(input_size))


def ensemble_config(name: str) -> EnsembleConfig | None:
    return _ensembles.get(name)


def registered_embedders() -> list[str]:
    return list(_embedders)


def registered_ensembles() -> list[str]:
    return list(_ensembles)


def detector_builders() -> dict[str, Callable[..., Any]]:
    return dict(_detectors)
