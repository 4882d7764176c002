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

SPEC_PREFIX = "ensemble:"
ENSEMBLES: dict[str, tuple[tuple[str, float], ...]] = {
    "efficientnet-lite012-gem": (("efficientnet-lite0-gem", 1.0), ("efficientnet-lite1-gem", 1.0),
                                 ("efficientnet-lite2-gem", 1.0)),
    "efficientnet-lite02-gem": (("efficientnet-lite0-gem", 1.0), ("efficientnet-lite2-gem", 1.0)),
    "efficientnet-lite012-gem-224x176": (("efficientnet-lite0-gem-224x176", 1.0), ("efficientnet-lite1-gem-224x176", 1.0),
                                         ("efficientnet-lite2-gem-224x176", 1.0)),
    # Lite0+1+2 and the packaged int8 Lite3 (engine.models.tflite), Lite3 weighted as much as the three others
    "efficientnet-lite0123-gem-224x176": (("efficientnet-lite0-gem-224x176", 1.0), ("efficientnet-lite1-gem-224x176", 1.0),
                                          ("efficientnet-lite2-gem-224x176", 1.0), ("efficientnet-lite3-gem-224x176", 3.0)),
}


def is_ensemble(name: str) -> bool:
    return name in ENSEMBLES or name.startswith(SPEC_PREFIX)


def members_of(name: str) -> tuple[tuple[str, float], ...]:
    """(member name, weight) of an ensemble name or spec; a ModelError for a malformed spec."""
    if name in ENSEMBLES:
        return ENSEMBLES[name]
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
        out.append((member, w))
    if not out:
        raise ModelError(f"the ensemble {name!r} has no members")
    return tuple(out)


class EnsembleEmbedder:
    """Weighted concatenation of member embedders (see the module's docstring)."""

    def __init__(self, name: str, members: list, weights: list[float]) -> None:
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
        self.supports_bands = all(getattr(m, "supports_bands", False) for m in members)
        self.runtime = "+".join(sorted({getattr(m, "runtime", "torch") for m in members}))
        self.precision = "+".join(sorted({getattr(m, "precision", "f32") for m in members}))
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


def _fused_vectors(name: str, members: list, scales: list[float]):  # -> engine.models.openvino_rt.OpenVinoGraph | None
    """The ensemble's vectors as one OpenVINO model (``openvino_rt.ensemble_vectors``) when every member is an
    OpenVINO backbone with GeM pooling of one p at one precision; else None (the members run one by one)."""
    from engine.models.openvino_rt import OpenVinoBackbone, ensemble_vectors

    backbones = [getattr(m, "backbone", None) for m in members]
    ps = {getattr(m, "gem_p", None) for m in members}
    if (not all(isinstance(b, OpenVinoBackbone) for b in backbones) or len(ps) != 1 or None in ps
            or len({b.precision for b in backbones}) != 1):
        return None
    try:
        return ensemble_vectors(name, backbones, scales, p=float(ps.pop()))
    except Exception:  # noqa: BLE001 - a graph OpenVINO will not build: the members one by one, as before
        return None
