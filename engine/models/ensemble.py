"""A backbone ensemble as one embedder: several members' vectors, weighted and concatenated.

Each member gives an L2-normalised vector; the ensemble scales member ``i`` by ``sqrt(w_i)`` (weights summing to 1)
and concatenates them. The result has norm 1 and the cosine of two ensemble vectors is the weighted mean of the
members' cosines, so an Annoy (angular) index over the concatenation ranks exactly as averaged cosines would,
with no change to the index, the caches or the search.

Members share one preprocessing (same input size, same normalisation): a batch of crops is resized and normalised
once and run through every member; feature maps (one forward pass per region and member) are pooled member by
member, so the pooled and refined window strategies work on an ensemble too.

Names: ``efficientnet-lite012-gem-224x176`` (the default: EfficientNet-Lite0, Lite1 and Lite2, GeM over each last
stage, equal weights, at a 224x176 input), ``efficientnet-lite012-gem`` (the same at 288x224), or a spec
``ensemble:NAME[*W]+NAME[*W]...`` for experiments (``ensemble:efficientnet-lite0-gem+efficientnet-lite2-gem*2``).
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import ModelError
from engine.models.embedders import DEFAULT_INPUT, EfficientNetLiteGeM, TorchEmbedder
from engine.models.openvino_rt import OpenVinoBackbone, OpenVinoGraph
from engine.models.protocols import Exported, pools_bands
from engine.models.registry import (EnsembleConfig, embedder_entry, ensemble_config, register_ensemble,
                                    registered_ensembles)

SPEC_PREFIX = "ensemble:"
LITE012 = (("efficientnet-lite0-gem", 1.0), ("efficientnet-lite1-gem", 1.0), ("efficientnet-lite2-gem", 1.0))
register_ensemble(EnsembleConfig("efficientnet-lite012-gem", LITE012))
register_ensemble(EnsembleConfig("efficientnet-lite02-gem", (LITE012[0], LITE012[2])))
register_ensemble(EnsembleConfig("efficientnet-lite012-gem", LITE012, DEFAULT_INPUT))
# Lite0+1+2 and the packaged int8 Lite3 (engine.models.tflite), Lite3 weighted as much as the three others
register_ensemble(EnsembleConfig("efficientnet-lite0123-gem", (*LITE012, ("efficientnet-lite3-gem", 3.0)),
                                 DEFAULT_INPUT, bare_hw=None))


def is_ensemble(name: str) -> bool:
    return ensemble_config(name) is not None or name.startswith(SPEC_PREFIX)


def sized_member(member: str, input_hw: tuple[int, int] | None) -> str:
    """A member's name at ``input_hw`` (its own when None or not a registered backbone)."""
    entry = embedder_entry(member, input_hw) if input_hw is not None else None
    return entry.config.name if entry is not None else member


def ensemble_name(name: str, input_size: tuple[int, int]) -> str:
    """The name of an ensemble at another input size: the registered ensemble of the same family at that size, else
    a spec of its members at that size."""
    config = ensemble_config(name)
    if config is not None:
        same = (ensemble_config(n) for n in registered_ensembles())
        found = next((c for c in same if c is not None and c.family == config.family
                      and c.input_hw == tuple(input_size)), None)
        if found is not None:
            return found.name
    return SPEC_PREFIX + "+".join(f"{m}*{w:g}" for m, w in members_of(name, input_size))


def members_of(name: str, input_size: tuple[int, int] | None = None) -> tuple[tuple[str, float], ...]:
    """(member name, weight) of an ensemble name or spec, every member at ``input_size`` when given (else at the
    ensemble's own size); a ModelError for a malformed spec."""
    config = ensemble_config(name)
    if config is not None:
        return tuple((sized_member(m, input_size or config.input_hw), w) for m, w in config.members)
    if not name.startswith(SPEC_PREFIX):
        raise ModelError(f"{name!r} is not an ensemble")
    out = []
    for part in name[len(SPEC_PREFIX):].split("+"):
        member, _, weight = part.strip().partition("*")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ModelError(f"bad weight {weight!r} in the ensemble {name!r}") from None
        if not member or not math.isfinite(w) or w <= 0:
            raise ModelError(f"bad member {part!r} in the ensemble {name!r}")
        out.append((sized_member(member, input_size), w))
    if not out:
        raise ModelError(f"the ensemble {name!r} has no members")
    return tuple(out)


class EnsembleEmbedder:
    """Weighted concatenation of member embedders (see the module's docstring)."""

    def __init__(self, name: str, members: list[TorchEmbedder], weights: list[float]) -> None:
        if not members or len(members) != len(weights):
            raise ModelError("an ensemble needs one weight per member")
        hw = {tuple(m.input_hw) for m in members}
        if len(hw) != 1:
            raise ModelError(f"ensemble members must share one input size, not {sorted(hw)}")
        total = float(sum(weights))
        self.name = name
        self.members = list(members)
        self.weights = [w / total for w in weights]
        self._scales = [math.sqrt(w) for w in self.weights]
        self.dim = int(sum(m.dim for m in members))
        self.key = self._keyed([m.key for m in members])
        self.vectors_key = self._keyed([m.vectors_key for m in members])  # the members' precisions included
        self.device = members[0].device
        self.input_hw = members[0].input_hw
        self.supports_bands = all(pools_bands(m) for m in members)
        self.runtime = "+".join(sorted({m.runtime for m in members}))
        self.precision = "+".join(sorted({m.precision for m in members}))
        self.vectors_graph = _fused_vectors(name, self.members, self._scales)

    def _keyed(self, keys: list[str]) -> str:
        return "ensemble/" + "+".join(f"{k}*{w:.4g}" for k, w in zip(keys, self.weights)) + "/v1"

    @property
    def slices(self) -> list[slice]:
        """Where each member's (scaled) vector sits in an ensemble vector."""
        out, start = [], 0
        for m in self.members:
            out.append(slice(start, start + m.dim))
            start += m.dim
        return out

    def _join(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([p * s for p, s in zip(parts, self._scales)], axis=-1).astype(np.float32)

    def preprocess(self, crops: list[np.ndarray], hw: tuple[int, int] | None = None) -> np.ndarray:
        return self.members[0].preprocess(crops, hw)

    def embed_preprocessed(self, batch: np.ndarray) -> np.ndarray:
        if self.vectors_graph is not None:  # every member in one OpenVINO call, pooled in the graph
            return self.vectors_graph.run(batch)
        return self._join([m.embed_preprocessed(batch) for m in self.members])

    def embed(self, crops: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """(N, dim) float32, norm 1: crops resized and normalised once per batch, run through every member."""
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        out = [self.embed_preprocessed(self.preprocess(crops[i: i + batch_size]))
               for i in range(0, len(crops), batch_size)]
        return np.concatenate(out)

    def feature_maps(self, regions: list[np.ndarray], batch_size: int = 16) -> list[tuple]:
        """One tuple of member feature maps per region (one forward pass per region and member, on regions
        resized and normalised once)."""
        out: list = [None] * len(regions)
        for chunk, batch in self.members[0].region_batches(regions, batch_size):  # resized once for all members
            maps = [m.feature_maps_preprocessed(batch) for m in self.members]
            for k, i in enumerate(chunk):
                out[i] = tuple(fmap[k] for fmap in maps)
        return out

    def pool_boxes(self, fmap: tuple, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
        return self._join([m.pool_boxes(f, boxes) for m, f in zip(self.members, fmap)])

    def embed_bands(self, regions: list[np.ndarray], bands: list[tuple[float, float]],
                    batch_size: int = 16) -> np.ndarray:
        out = np.zeros((len(regions), len(bands), self.dim), np.float32)
        for i, fmap in enumerate(self.feature_maps(regions, batch_size)):
            out[i] = self.pool_boxes(fmap, [(0.0, y0, 1.0, y1) for y0, y1 in bands])
        return out


def member_slices(embedder: object) -> tuple[tuple[slice, float], ...]:
    """(slice, weight) of each member of an ensemble embedder, for per-member cosines (the dot product of two
    vectors' slices divided by the weight); empty for any other embedder (one member: the whole vector)."""
    if not isinstance(embedder, EnsembleEmbedder):
        return ()
    parts = embedder.slices() if callable(embedder.slices) else embedder.slices
    return tuple(zip(parts, embedder.weights))


def _fused_vectors(name: str, members: list[TorchEmbedder], scales: list[float]) -> OpenVinoGraph | None:
    """The ensemble's vectors as one OpenVINO model (``ensemble_vectors``) when every member is an EfficientNet-Lite
    GeM on an OpenVINO backbone, at one precision; else None (the members run one by one)."""
    backbones = [m.backbone for m in members if isinstance(m, EfficientNetLiteGeM) and isinstance(m, Exported)
                 and isinstance(m.backbone, OpenVinoBackbone)]
    ps = {m.gem_p for m in members if isinstance(m, EfficientNetLiteGeM)}
    if len(backbones) != len(members) or len(ps) != 1 or len({b.precision for b in backbones}) != 1:
        return None
    try:
        return ensemble_vectors(name, backbones, scales, p=float(ps.pop()))
    except Exception:  # noqa: BLE001 - a graph OpenVINO will not build: the members one by one, as before
        return None


VECTORS_FORMAT = "gem-l2-weighted-concat/v1"  # bump when ensemble_vectors builds another graph


def ensemble_vectors(name: str, backbones: list[OpenVinoBackbone], scales: list[float], p: float = 3.0,
                     eps: float = 1e-6) -> OpenVinoGraph:
    """An ensemble's vectors as one OpenVINO model: every member backbone on one shared input, each feature map
    GeM-pooled (``p``, clamped at ``eps``), L2-normalised and scaled, then concatenated: what
    ``EnsembleEmbedder.embed_preprocessed`` computes from the members (the same vectors to float precision), in one
    inference call instead of a call per member and pooling in torch (faster: docs/performance-cpu.md). The members
    must share one precision."""
    import openvino as ov
    from openvino import opset13 as ops

    precisions = {b.precision for b in backbones}
    if len(precisions) != 1:
        raise ModelError(f"ensemble members at several precisions: {sorted(precisions)}")
    x = ops.parameter(ov.PartialShape([-1, 3, -1, -1]), np.float32, name="input")
    parts = []
    for backbone, scale in zip(backbones, scales):
        member = backbone.model.clone()
        (param,) = member.get_parameters()
        for target in list(param.output(0).get_target_inputs()):
            target.replace_source_output(x.output(0))
        fmap = member.get_results()[0].input_value(0)
        pooled = ops.power(ops.reduce_mean(ops.power(ops.maximum(fmap, np.float32(eps)), np.float32(p)),
                                           np.array([2, 3], np.int64), keep_dims=False), np.float32(1.0 / p))
        unit = ops.normalize_l2(pooled, np.array([1], np.int64), 1e-12, "max")
        parts.append(ops.multiply(unit, np.float32(scale)))
    model = ov.Model([ops.concat(parts, 1)], [x], name)
    identity = [VECTORS_FORMAT, f"p={p!r} eps={eps!r}", *(f"{s!r}" for s in scales)]
    identity += [part for b in backbones for part in b._identity]
    return OpenVinoGraph(model, f"{name}-vectors", identity, backbones[0].precision, backbones[0].threads)
