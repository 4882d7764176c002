"""Product names for display (plain Python, no Streamlit): the id shown once.

Real catalogues without display names get "<id> · <category>" as a name (engine.io.catalogue), so appending the id
again ("000134 · short-sleeve dress (000134)") repeats it; these helpers strip it first.
"""

from __future__ import annotations

from typing import Mapping


def bare_name(name: str, product_id: str) -> str:
    """The name without the product's id: "000134 · short-sleeve dress" -> "short-sleeve dress"; '' when the name
    is only the id."""
    text = str(name or "").strip()
    for prefix in (f"{product_id} · ", f"{product_id} - "):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
            break
    suffix = f" ({product_id})"
    if text.endswith(suffix):
        text = text[: -len(suffix)].strip()
    return "" if text == product_id else text


def product_label(name: str, product_id: str) -> str:
    """Name and id, the id once: "short-sleeve dress (000134)"; just the id when the name adds nothing."""
    bare = bare_name(name, product_id)
    return f"{bare} ({product_id})" if bare else product_id


def clip_shows(video_id: str, truth: str | None, names: Mapping[str, str]) -> str:
    """What a sample clip shows, by name: its product's id too unless it is the clip's own (the id once)."""
    if truth is None or truth not in names:
        return "an unknown product"
    if truth == video_id:
        return bare_name(names[truth], truth) or truth
    return product_label(names[truth], truth)
