"""One registry of named set-ups: the settings each comparison row changes from the defaults.

``evaluate --compare`` runs COMPARE; ``evaluate --compare --learned`` runs LEARNED, where "{triplet}",
"{selfsup}" and "{garment}" stand for the checkpoints trained in each leave-products-out fold.
"""

from __future__ import annotations

from typing import Any

from engine.config import Settings

Overrides = dict[str, Any]

PLAIN: Overrides = {"domain_mean": "none", "rank_by": "votes"}  # no domain centring, one vote per frame
WINDOWS_18: Overrides = {"window_stride": 0.1}  # the previous exhaustive set: 18 garment windows per region
BASELINE: Overrides = {"embedder": "efficientnet-lite0", "windows": "whole", **PLAIN}
PERSON_GEM: Overrides = {"windows": "whole"}
DEFAULT: Overrides = {}

COMPARE: dict[str, Overrides] = {
    "baseline: person regions, 1280-d head": BASELINE,
    "person regions, GeM last stage": {**PERSON_GEM, **PLAIN},
    "garment windows, GeM (18 windows, the first default)": {**PLAIN, **WINDOWS_18},
    "+ evidence summed over frames": {"domain_mean": "none", **WINDOWS_18},
    "+ domain centring, one vote per frame": {"rank_by": "votes", **WINDOWS_18},
    "+ centring + summed evidence (the previous default)": WINDOWS_18,
    "+ 10 windows, stride 0.2 (default)": DEFAULT,
    "default, whole person regions": PERSON_GEM,
    "default, fast (3 refined windows)": {"windows": "refined", "refine_top": 3},
    "default, pooled windows": {"windows": "pooled"},
}

LEARNED: dict[str, Overrides] = {
    "baseline: person regions, 1280-d head": BASELINE,
    "person regions, GeM": PERSON_GEM,
    "person regions, GeM + triplet head": {**PERSON_GEM, "head": "{triplet}"},
    "person regions, GeM + self-supervised head": {**PERSON_GEM, "head": "{selfsup}"},
    "learned garment regions": {"garment_model": "{garment}"},
    "learned garment regions, pooled (one pass per region)": {"garment_model": "{garment}", "windows": "pooled"},
    "learned garment regions + category weighting": {"garment_model": "{garment}", "category_weight": 0.1},
    "learned garment regions + k-NN category weighting": {"garment_model": "{garment}", "category_weight": 0.1,
                                                           "category_source": "knn"},
    "searched garment windows (default)": DEFAULT,
    "searched garment windows + triplet head": {"head": "{triplet}"},
    "all learned: garment regions + fused categories + triplet": {"garment_model": "{garment}", "head": "{triplet}",
                                                                  "category_weight": 0.1},
    "all learned, k-NN categories": {"garment_model": "{garment}", "head": "{triplet}", "category_weight": 0.1,
                                     "category_source": "knn"},
}


def apply(settings: Settings, overrides: Overrides, checkpoints: dict[str, str] | None = None) -> Settings:
    """The settings of a set-up; "{name}" values are replaced by ``checkpoints[name]``."""
    filled = {k: (v.format(**checkpoints) if checkpoints and isinstance(v, str) and "{" in v else v)
              for k, v in overrides.items()}
    return settings.with_(**filled)
