"""Catalogue page views: searching, paging and browsing products, and one product's details."""

from __future__ import annotations

import html
import math
from pathlib import Path

import streamlit as st

from engine.index.store import IndexSummary
from engine.io.catalogue import Catalogue
from engine.types import Product
from ui.text import code, md

from .components import category_label, image_or_placeholder
from .media import annotated_image, thumb
from .names import bare_name, display_name, has_own_name, product_label
from .views import category_names

PER_ROW = 5
PAGE_SIZE = 20
ALL = "All categories"
SELECT_KEY = "catalogue.show"  # a product to show in the details, set by buttons (the selectbox is drawn later)


def filtered(catalogue: Catalogue, query: str, category: str) -> list[Product]:
    q = query.strip().lower()
    out = []
    for p in catalogue.products.values():
        if category != ALL and category_label(p.category) != category:
            continue
        if q and q not in p.name.lower() and q not in p.product_id.lower():
            continue
        out.append(p)
    return out


def select_product(pid: str) -> None:
    st.session_state[SELECT_KEY] = pid


def product_card(catalogue: Catalogue, p: Product) -> None:
    with st.container(border=True):
        image_or_placeholder(thumb(p.cover_image))
        n = len(p.images)
        title = display_name(p.name, p.product_id, p.category)  # the id once: "short skirt · 000117"
        named = has_own_name(p.name, p.product_id, p.category)
        images = f'{n} image{"s" if n != 1 else ""}'
        first = f"{p.product_id} · {images}" if named else images
        second = category_label(p.category) if named else "no name in the catalogue"
        st.html(f'<div class="lm-name" title="{_escape(title)}">{_escape(title)}</div>'
                f'<div class="lm-meta"><div class="lm-line">{_escape(first)}</div><div class="lm-line" '
                f'title="{_escape(second)}">{_escape(second) or "&nbsp;"}</div></div>')
        if st.button("Details", key=f"catalogue.view.{p.product_id}", on_click=select_product,
                     args=(p.product_id,), icon=":material/visibility:", width="stretch", type="tertiary"):
            details_dialog(catalogue, p.product_id)  # shown where the person is looking, over the grid


def browse(catalogue: Catalogue) -> None:
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    query = c1.text_input("Search", placeholder="Name or id", key="catalogue.query", label_visibility="collapsed",
                          icon=":material/search:")
    category = c2.selectbox("Category", [ALL, *category_names(catalogue)], key="catalogue.category",
                            label_visibility="collapsed")
    products = filtered(catalogue, query, category)
    pages = max(1, math.ceil(len(products) / PAGE_SIZE))
    page = 1
    with c3:
        if pages > 1:
            page = int(st.number_input("Page", 1, pages, 1, key="catalogue.page", label_visibility="collapsed"))
        where = f" · page {page} of {pages}" if pages > 1 else ""
        st.caption(f"{len(products)} of {len(catalogue.products)} products{where}")
    if not products:
        st.info("No product matches this search.", icon=":material/search_off:")
        return
    shown = products[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    for start in range(0, len(shown), PER_ROW):
        cols = st.columns(PER_ROW)
        for col, p in zip(cols, shown[start : start + PER_ROW]):
            with col:
                product_card(catalogue, p)
    details(catalogue, products)


def details(catalogue: Catalogue, products: list[Product]) -> None:
    ids = [p.product_id for p in products]
    wanted = st.session_state.pop(SELECT_KEY, None)
    if wanted in ids:
        st.session_state["catalogue.selected"] = wanted
    if st.session_state.get("catalogue.selected") not in ids:
        st.session_state["catalogue.selected"] = ids[0]
    st.subheader("Product details", anchor=False)
    pid = st.selectbox("Product", ids, key="catalogue.selected", label_visibility="collapsed",
                       format_func=lambda i: product_label(catalogue.products[i].name, i))
    product_details(catalogue, catalogue.products[pid])


@st.dialog("Product details", width="large")
def details_dialog(catalogue: Catalogue, pid: str) -> None:
    """A product's details over the page (the Details button of a card)."""
    if pid in catalogue.products:
        product_details(catalogue, catalogue.products[pid])


def product_details(catalogue: Catalogue, p: Product) -> None:
    """Name, id, category, counts and clips, then the images with their annotated regions."""
    clips = [c.video_id for c in catalogue.clips.values() if c.truth == p.product_id and c.path]
    bare = bare_name(p.name, p.product_id)
    facts = [f"**{md(bare)}**" if bare else "", f"id {code(p.product_id)}"]
    category = category_label(p.category)
    if category and category != bare:
        facts.append(md(category))
    facts.append(f"{len(p.images)} image{'s' if len(p.images) != 1 else ''} · {len(p.regions)} annotated "
                 f"region{'s' if len(p.regions) != 1 else ''}")
    if clips:
        facts.append(f"shown in clip{'s' if len(clips) > 1 else ''} {md(', '.join(clips))}")
    st.markdown(" · ".join(f for f in facts if f))
    if p.regions:
        st.caption("Green: the product's annotated region. White: other garments annotated in the same image.")
    cols = st.columns(4)
    for i, image in enumerate(p.images[:8]):
        with cols[i % 4]:
            image_or_placeholder(annotated_image(image, p.regions), Path(image).name)


def build_note(summary: IndexSummary) -> str:
    """How the index was made: embedded, or re-published from the embedding cache (nothing embedded)."""
    took = f"{summary.build_seconds:g} s" if summary.build_seconds is not None else "an unknown time"
    hits, misses = summary.cache_hits, summary.cache_misses
    if hits + misses == 0:  # a sidecar without cache counts
        return f"built in {took}"
    counts = f"({hits} image{'s' if hits != 1 else ''} cached, {misses} embedded)"
    if misses == 0:
        return f"re-published from the embedding cache in {took} {counts}"
    return f"built in {took} {counts}"


def _escape(text: str) -> str:
    return html.escape(str(text))
