"""Catalogue: browse products and their annotated regions, add a product, rebuild the index."""

from __future__ import annotations

import streamlit as st

from engine import workspace
from engine.io.catalogue import ALL_PROBLEMS, Catalogue
from engine.io.editing import add_product, copy_catalogue, read_only_reason, removal_plan, remove_product
from engine.config import Settings
from ui import state
from ui.shell import shell
from ui.adding import clear_form, product_form
from ui.components import EDITING_OFF, ask, asked, confirm, guard, page_header, stat_tiles
from ui.training import training_panel
from ui.correcting import examples_panel
from ui.catalogue_views import SELECT_KEY, browse, build_note
from ui.startup import prepare_index
from ui.text import code, md

shell()

NOTICE_KEY = state.NOTICE_KEY
REBUILD_KEY = "catalogue.rebuild_requested"


# --------------------------------------------------------------------------------------------- index
def request_rebuild() -> None:
    st.session_state[REBUILD_KEY] = True


def index_panel(settings: Settings, catalogue: Catalogue, editing: bool) -> None:
    if st.session_state.pop(REBUILD_KEY, False) and editing:  # the button's callback asked: build before drawing
        built = state.build_index(settings, catalogue)
        st.success(f"Index rebuilt: {built.n_products} products, {built.n_items} regions."
                   if built else "Index rebuilt.", icon=":material/check_circle:")
    summary = state.index_summary(settings, catalogue.root)
    left, right = st.columns([4.2, 1], vertical_alignment="center")
    with left:
        if summary is None:
            stat_tiles([("Products", str(len(catalogue.products)), f"{catalogue.n_images} images"),
                        ("Index", "not built yet", "for this catalogue and embedder")])
        else:
            built = (summary.built_at or "?").replace("T", " ")[:16]
            stat_tiles([
                ("Products indexed", f"{summary.n_products} / {len(catalogue.products)}",
                 f"{catalogue.n_images} images"),
                ("Regions", str(summary.n_items), "annotated, detected or whole images"),
                ("Model", summary.embedder or summary.model_key,
                 f"{summary.dim}-d · " + (f"{summary.n_trees} Annoy trees" if summary.backend == "annoy"
                                          else f"{summary.backend} backend")),
                ("Built at", built, build_note(summary)),
            ])
    with right:
        if editing:
            label = "Build index" if summary is None else "Rebuild index"
            st.button(label, icon=":material/refresh:", key="catalogue.rebuild", width="stretch",
                      on_click=request_rebuild)


# --------------------------------------------------------------------------------------------- add
def add_panel(settings: Settings, catalogue: Catalogue, editing: bool) -> None:
    if not editing:
        st.info(EDITING_OFF, icon=":material/lock:")
        return
    if state.is_builtin_demo(settings):
        copy = workspace.user_copy_dir(settings)
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
    locked = read_only_reason(catalogue.root)
    if locked:
        st.info(f"Products cannot be added here: {md(locked)}. Copy the catalogue to a folder of your own to edit it.",
                icon=":material/lock:")
        return
    layout = "image/<id>/<n>.jpg" if catalogue.layout == "tianchi" else "<id>/<n>.jpg"
    st.caption(f"Images are checked first, then written to {code(catalogue.root)} as {code(layout)}; nothing is written if "
               "any image cannot be read. The index is rebuilt right after (only the new images are embedded).")
    new = product_form(settings, keeps_boxes=catalogue.layout == "tianchi")
    if st.button("Add product", type="primary", icon=":material/add:", key="catalogue.add"):
        add_product(catalogue.root, new.product_id, new.name, new.category, new.files, new.boxes)
        state.forget_catalogue()
        pid = new.product_id.strip()
        state.update_index(settings, state.get_catalogue(settings), [pid])  # milvus: only this product's rows
        boxed = f", {new.n_boxes} with a confirmed product box" if new.n_boxes else ""
        st.session_state[NOTICE_KEY] = (f"Added {new.name or pid} ({pid}) with {len(new.files)} image(s){boxed}; "
                                        "the index is up to date.")
        st.session_state[SELECT_KEY] = pid
        clear_form()  # an empty form for the next product
        st.rerun()


REMOVE = "remove-product"  # the confirmation's kind (ui.components.ask)


def remove_button(settings: Settings, catalogue: Catalogue) -> None:
    """"Remove product …" for the product shown in the details (not in the read-only built-in demo, nor the last
    one). It only opens a dialog that names what will be deleted and asks once (ui.components.confirm)."""
    pid = st.session_state.get("catalogue.selected")
    pending = asked(REMOVE)
    if pending is not None and pending in catalogue.products:
        plan = removal_plan(catalogue.root, pending)
        name = catalogue.products[pending].name
        confirm(f"Remove product {md(pending)}?",
                f"**{md(name)}** ({md(pending)}) leaves the catalogue and the index. This deletes its {plan.describe()} "
                "from the catalogue folder:", [_relative(catalogue, p) for p in (*plan.images, *plan.annotations)],
                "Remove", _remove, settings, catalogue, pending, note=plan.kept_note())
    if state.is_builtin_demo(settings) or pid not in catalogue.products or len(catalogue.products) < 2:
        return
    locked = read_only_reason(catalogue.root)
    st.button(f"Remove product {md(pid)}…", icon=":material/delete:", key="catalogue.remove", on_click=ask,
              args=(REMOVE, pid), disabled=bool(locked),
              help=f"Not here: {md(locked)}. Copy the catalogue to a folder of your own to edit it." if locked else None)
    if locked:
        st.caption(f":material/lock: Products cannot be removed: {md(locked)}.")


def _relative(catalogue: Catalogue, path) -> str:
    try:
        return str(path.relative_to(catalogue.root))
    except ValueError:
        return str(path)


def _remove(settings: Settings, catalogue: Catalogue, pid: str) -> None:
    """The confirmed removal: only the product's images and annotations go; the index follows."""
    removed = remove_product(catalogue.root, pid)
    state.forget_catalogue()
    state.update_index(settings, state.get_catalogue(settings), [], removed=[pid])
    kept = f" ({len(removed.kept)} other file(s) in its folders were kept)" if removed.kept else ""
    st.session_state[NOTICE_KEY] = f"Removed {pid}{kept}; the index is up to date."


def main() -> None:
    page_header("Catalogue", "The products the engine can recognise: browse them and their annotated regions, "
                "add new ones, and keep the index up to date.")
    settings = state.current_settings()
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.success(md(notice), icon=":material/check_circle:")
    with guard("the catalogue"):
        catalogue = state.get_catalogue(settings)
        editing = state.editing_enabled()
        with st.container():  # one place whether the index's status box is drawn or not: the tabs below keep
            prepare_index(settings, catalogue)  # theirs, and the open tab stays open when the box goes
            index_panel(settings, catalogue, editing)
        browse_tab, add_tab, train_tab, examples_tab = st.tabs([
            ":material/grid_view: Products", ":material/add_circle: Add a product",
            ":material/model_training: Learned models", ":material/school: Livestream examples"])
        with browse_tab:
            browse(catalogue)
            if editing:
                remove_button(settings, catalogue)
        with add_tab, guard("the new product"):
            add_panel(settings, catalogue, editing)
        with train_tab, guard("training"):
            if editing:
                training_panel(settings, catalogue)
            else:
                st.info(EDITING_OFF, icon=":material/lock:")
        with examples_tab, guard("the livestream examples"):
            examples_panel(settings, catalogue, editing)
        problems_panel(settings, catalogue)


def problems_panel(settings: Settings, catalogue: Catalogue) -> None:
    """The files the catalogue reader and the last index build skipped or read in part, each with its reason."""
    summary = state.index_summary(settings, catalogue.root)
    notes = list(dict.fromkeys([*catalogue.problems, *(summary.problems if summary else ())]))
    if not notes:
        return
    files = len({n.split(": ", 1)[0] for n in notes})
    with st.expander(f"{files} file(s) skipped or partly read: {len(notes)} note(s) about this catalogue",
                     icon=":material/info:"):
        for note in notes[:200]:
            st.text(note)
        if len(notes) > 200:
            st.caption(f"… and {len(notes) - 200} more: {code(ALL_PROBLEMS)} prints all {len(notes)}.")


with guard("the Catalogue page"):
    main()
