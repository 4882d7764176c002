"""Product names for display (plain Python, no Streamlit): the id shown once.

Real catalogues without display names get "<id> · <category>" as a name (engine.io.catalogue), so appending the id
again ("000134 · short-sleeve dress (000134)") repeats it; these helpers strip it first.
"""

from __future__ import annotations

from typing import Mapping

from engine.categories import english


def bare_name(name: str, product_id: str) -> str:
    """The name without the product's id: "000134 · short-sleeve dress" -> "short-sleeve dress"; '' when the name
    is only the id."""
    text = str(name or "").strip()
    for prefix in (f"{product_id} · ", f"{product_id} - "):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
            break
    for suffix in (f" ({product_id})", f" · {product_id}"):
        if text.endswith(suffix):
            text = text[: -len(suffix)].strip()
            break
    return "" if text == product_id else text


def has_own_name(name: str, product_id: str, category: str = "") -> bool:
    """Whether the catalogue names the product: not just its id, nor its category (Tianchi data has no names, and
    the catalogue then calls a product "<id> · <category>")."""
    bare = bare_name(name, product_id)
    return bool(bare) and bare != (english(category) if category else "")


def display_name(name: str, product_id: str, category: str = "") -> str:
    """The name people read: the product's own name where the catalogue has one ("Purple zigzag skirt"), else its
    category and id once ("short skirt · 000117"), else the id."""
    if has_own_name(name, product_id, category):
        return bare_name(name, product_id)
    label = (english(category) if category else "") or bare_name(name, product_id)
    return f"{label} · {product_id}" if label else product_id


def product_label(name: str, product_id: str) -> str:
    """Name and id, the id once: "short-sleeve dress (000134)"; just the id when the name adds nothing."""
    bare = bare_name(name, product_id)
    return f"{bare} ({product_id})" if bare else product_id


def clip_shows(video_id: str, truth: str | None, names: Mapping[str, str]) -> str:
    """What a sample clip shows, by name: its product's id too unless it is the clip's own (the id once)."""
    if truth is None or truth not in names:
        return "a product not in the catalogue"
    if truth == video_id:
        return bare_name(names[truth], truth) or truth
    return product_label(names[truth], truth)
