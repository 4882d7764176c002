"""Garment families for category-consistent matching: a window's family (tops, outerwear, dresses, skirts, trousers
and overalls) from a linear head learned on the catalogue's own annotated regions, so a product is matched only by
windows of its family (``category_source="family"`` with a ``category_weight``: pairs of two families lose that much
similarity).

The head is a multinomial logistic regression over the index's region vectors (the embedder's features of the
catalogue's annotated boxes, labelled by their category's family). It takes nothing from the clips searched, and is
fitted once per index build (well under a second for a few hundred regions).
"""

from __future__ import annotations

import threading

import numpy as np

from engine.categories import canonical

FAMILIES: dict[str, tuple[str, ...]] = {
    "tops": ("短袖上衣", "长袖上衣", "短袖衬衫", "长袖衬衫", "背心上衣", "吊带上衣", "无袖上衣"),
    "outerwear": ("短外套", "短马甲", "长马甲", "长外套"),
    "dresses": ("长袖连衣裙", "短袖连衣裙", "无袖连衣裙", "连体衣", "古风"),
    "skirts": ("短裙", "中等半身裙", "长半身裙"),
    "trousers": ("短裤", "中裤", "长裤", "背带裤"),
}
_FAMILY_OF = {c: f for f, cats in FAMILIES.items() for c in cats}


def family(category: str) -> str:
    """The family of a category label ("" for a label outside every family)."""
    return _FAMILY_OF.get(canonical(category), "")


class FamilyHead:
    """A window's family from its vector (see the module's docstring); ``None`` from ``fit`` when the catalogue has
    fewer than two families to tell apart."""

    def __init__(self, model, classes: list[str]) -> None:  # noqa: D107
        self._model = model
        self.classes = classes

    @classmethod
    def fit(cls, vectors: np.ndarray, categories: list[str]) -> FamilyHead | None:
        from sklearn.linear_model import LogisticRegression

        labels = [family(c) for c in categories]
        keep = [i for i, f in enumerate(labels) if f]
        if len({labels[i] for i in keep}) < 2:
            return None
        model = LogisticRegression(max_iter=2000, C=1.0)
        model.fit(np.asarray(vectors, np.float32)[keep], [labels[i] for i in keep])
        return cls(model, [str(c) for c in model.classes_])

    def predict(self, vectors: np.ndarray) -> list[str]:
        return [str(c) for c in self._model.predict(np.asarray(vectors, np.float32))]


_heads: dict[tuple[str, str], FamilyHead | None] = {}
_lock = threading.Lock()


def family_head(index) -> FamilyHead | None:  # index: engine.index.store.ProductIndex
    """The family head of an index build (fitted on first use, kept per build and model)."""
    key = (str(index.build), str(index.model_key))
    with _lock:
        if key not in _heads:
            live = [i for i in range(len(index.items)) if i not in index.deleted]
            _heads[key] = FamilyHead.fit(np.asarray(index.vectors)[live], [index.items[i].category for i in live])
        return _heads[key]
