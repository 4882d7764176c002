"""Catalogue: browse products and their annotated regions, add a product, rebuild the index."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from engine.catalog import Catalogue
from engine.catalog_edit import add_product, copy_catalogue
from engine.categories import CATEGORY_EN
from engine.config import Settings
from engine.types import Product
from ui import state
from ui.components import category_label, guard, image_or_placeholder, page_header, stat_tiles
from ui.media import annotated_image, thumb
from ui.training import training_panel
from ui.views import category_names

PER_ROW = 5
PAGE_SIZE = 20
ALL = "All categories"
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
NOTICE_KEY = state.NOTICE_KEY
REBUILD_KEY = "catalogue.rebuild_requested"
SELECT_KEY = "catalogue.show"  # a product to show in the details, set by buttons (the selectbox is drawn later)
FORM_KEYS = ("catalogue.new_id", "catalogue.new_name", "catalogue.new_category", "catalogue.new_images")


def user_copy_dir(settings: Settings) -> Path:
    return settings.home / "catalogues" / "user"


# --------------------------------------------------------------------------------------------- index
def request_rebuild() -> None:
    st.session_state[REBUILD_KEY] = True


def index_panel(settings: Settings, catalogue: Catalogue) -> None:
    if st.session_state.pop(REBUILD_KEY, False):  # the button's callback asked for it: build before drawing
        built = state.build_index(settings, catalogue)
        st.success(f"Index rebuilt: {built.get('n_products')} products, {built.get('n_items')} regions."
                   if built else "Index rebuilt.", icon=":material/check_circle:")
    summary = state.index_summary(settings, catalogue.root)
    left, right = st.columns([4.2, 1], vertical_alignment="center")
    with left:
        if summary is None:
            stat_tiles([("Products", str(len(catalogue.products)), f"{catalogue.n_images} images"),
                        ("Index", "not built yet", "for this catalogue and embedder")])
        else:
            built = str(summary.get("built_at") or "?").replace("T", " ")[:16]
            stat_tiles([
                ("Products indexed", f"{summary.get('n_products', 0)} / {len(catalogue.products)}",
                 f"{catalogue.n_images} images"),
                ("Regions", str(summary.get("n_items", 0)), "annotated, detected or whole images"),
                ("Model", str(summary.get("embedder") or summary.get("model_key", "?")),
                 f"{summary.get('dim')}-d · {summary.get('n_trees')} Annoy trees"),
                ("Built at", built, f"in {summary.get('build_seconds', '?')} s"),
            ])
    with right:
        label = "Build index" if summary is None else "Rebuild index"
        st.button(label, icon=":material/refresh:", key="catalogue.rebuild", width="stretch", on_click=request_rebuild)


# --------------------------------------------------------------------------------------------- browse
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


def product_card(p: Product) -> None:
    with st.container(border=True):
        image_or_placeholder(thumb(p.cover_image))
        n = len(p.images)
        st.html(f'<div class="lm-name" title="{_escape(p.name)}">{_escape(p.name)}</div>'
                f'<div class="lm-meta">{_escape(p.product_id)} · {n} image{"s" if n != 1 else ""}<br>'
                f'{_escape(category_label(p.category)) or "&nbsp;"}</div>')
        st.button("Details", key=f"catalogue.view.{p.product_id}", on_click=select_product, args=(p.product_id,),
                  icon=":material/visibility:", width="stretch", type="tertiary")


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
                product_card(p)
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
                       format_func=lambda i: f"{catalogue.products[i].name} · {i}")
    p = catalogue.products[pid]
    clips = [c.video_id for c in catalogue.clips.values() if c.truth == pid and c.path]
    facts = [f"**{p.name}**", f"id `{p.product_id}`"]
    if p.category:
        facts.append(category_label(p.category))
    facts.append(f"{len(p.images)} images · {len(p.regions)} annotated regions")
    if clips:
        facts.append(f"shown in clip{'s' if len(clips) > 1 else ''} {', '.join(clips)}")
    st.markdown(" · ".join(facts))
    if p.regions:
        st.caption("Green: the product's annotated region. White: other garments annotated in the same image.")
    cols = st.columns(4)
    for i, image in enumerate(p.images[:8]):
        with cols[i % 4]:
            image_or_placeholder(annotated_image(image, p.regions), Path(image).name)


# --------------------------------------------------------------------------------------------- add
def add_panel(settings: Settings, catalogue: Catalogue) -> None:
    if state.is_builtin_demo(settings):
        copy = user_copy_dir(settings)
        st.info("The built-in demo is read-only: it is regenerated when the demo changes, so edits would be lost. "
                f"Make an editable copy of it (in `{copy}`, clips included) and switch to it, or type your own "
                "catalogue folder in the sidebar.", icon=":material/lock:")
        label = "Switch to the editable copy" if copy.exists() else "Make an editable copy"
        if st.button(label, icon=":material/content_copy:", key="catalogue.copy"):
            if not copy.exists():
                copy_catalogue(catalogue.root, copy)
            st.session_state[NOTICE_KEY] = f"Now using the editable catalogue in {copy}."
            state.request_catalogue(copy)
        return
    layout = "image/<id>/<n>.jpg" if catalogue.layout == "tianchi" else "<id>/<n>.jpg"
    st.caption(f"Images are checked first, then written to `{catalogue.root}` as `{layout}`; nothing is written if "
               "any image cannot be read. The index is rebuilt right after (only the new images are embedded).")
    categories = ["", *CATEGORY_EN]
    with st.form("catalogue.add", clear_on_submit=False, border=True):
        c1, c2, c3 = st.columns([1, 2, 1])
        pid = c1.text_input("Product id", placeholder="e.g. 900101", max_chars=64, key="catalogue.new_id",
                            help="Letters, digits, '-', '_' and '.'; it names the product's folder.")
        name = c2.text_input("Name", placeholder="e.g. Red striped T-shirt", key="catalogue.new_name")
        category = c3.selectbox("Category", categories, format_func=lambda c: CATEGORY_EN.get(c, "unspecified"),
                                key="catalogue.new_category")
        files = st.file_uploader("Product images", type=IMAGE_TYPES, accept_multiple_files=True,
                                 key="catalogue.new_images",
                                 help="Shop photos of the product: JPEG, PNG, WebP or BMP. Each one is checked first.")
        submitted = st.form_submit_button("Add product", type="primary", icon=":material/add:")
    if submitted:
        uploads = [(f.name, f.getvalue()) for f in files or []]
        add_product(catalogue.root, pid, name, category, uploads)
        state.forget_catalogue()
        fresh = state.get_catalogue(settings)
        state.build_index(settings, fresh)
        st.session_state[NOTICE_KEY] = (f"Added {name or pid.strip()} ({pid.strip()}) with {len(uploads)} image(s); "
                                        "the index is up to date.")
        st.session_state[SELECT_KEY] = pid.strip()
        for key in FORM_KEYS:  # an empty form for the next product
            st.session_state.pop(key, None)
        st.rerun()


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))


def main() -> None:
    page_header("Catalogue", "The products the engine can recognise: browse them and their annotated regions, "
                "add new ones, and keep the index up to date.")
    settings = state.current_settings()
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.success(notice, icon=":material/check_circle:")
    with guard("the catalogue"):
        catalogue = state.get_catalogue(settings)
        index_panel(settings, catalogue)
        browse_tab, add_tab, train_tab = st.tabs([":material/grid_view: Products", ":material/add_circle: Add a product",
                                                  ":material/model_training: Learned models"])
        with browse_tab:
            browse(catalogue)
        with add_tab, guard("the new product"):
            add_panel(settings, catalogue)
        with train_tab, guard("training"):
            training_panel(settings, catalogue)
        if catalogue.problems:
            with st.expander(f"{len(catalogue.problems)} note(s) about this catalogue", icon=":material/info:"):
                for note in catalogue.problems[:200]:
                    st.markdown(f"- {note}")


main()
