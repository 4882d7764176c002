"""Corrections in the app: "this frame (or this clip) shows product X" on Match and Inspect, and the livestream
examples on the Catalogue page.

The button stores through the library (``Engine.correct``) in its callback, which reports in a toast and a notice
under the control (a callback's error becomes that notice, never a traceback). Matches are cached by the
corrections' signature (ui.state.engine_key), so the next match of a clip re-ranks with them."""

from __future__ import annotations

import logging

from pathlib import Path

import streamlit as st

from engine import workspace
from engine.config import Settings
from engine.errors import EngineError
from engine.index.corrections import CorrectionStore
from engine.io.catalogue import Catalogue

from . import state
from .components import ask, asked, confirm, image_or_placeholder
from .matching import ClipSource
from .media import thumb

NOTICE_PREFIX = "correcting.notice."  # + the control's key: ("success" | "error", message)
LIST_NOTICE = "correcting.notice.list"

log = logging.getLogger(__name__)


def _label(catalogue: Catalogue, pid: str) -> str:
    p = catalogue.products.get(pid)
    return f"{p.name} ({pid})" if p is not None and p.name and p.name != pid else pid


def correction_control(settings: Settings, catalogue: Catalogue, clip: ClipSource | str | None,
                       frames: list[int] | None, key: str, default: str | None = None, what: str = "This clip",
                       stacked: bool = False) -> None:
    """A product picker and a "This shows …" button storing ``frames`` (frame numbers; None: the sampled frames)
    of ``clip`` (a clip source, or a file path) as livestream examples of the chosen product. ``stacked``: the
    button under the picker (for narrow places such as a popover). Not drawn while editing is off."""
    if not state.editing_enabled():
        return
    pids = sorted(catalogue.products)
    left, right = (st.container(), st.container()) if stacked else st.columns([3, 2], vertical_alignment="bottom")
    with left:
        pid = st.selectbox(f"{what} shows", pids, index=pids.index(default) if default in pids else None,
                           key=f"{key}.product", format_func=lambda p: _label(catalogue, p),
                           placeholder="Choose the product it shows",
                           help="Stores the query regions as a livestream example of this product: the next "
                                "match uses it at once, without rebuilding the index. Listed on the Catalogue page.")
    with right:
        name = catalogue.products[pid].name if pid in catalogue.products else "…"
        st.button(f"This shows {name}", key=f"{key}.apply", icon=":material/school:", disabled=pid is None,
                  on_click=_apply, args=(settings, catalogue, clip, frames, pid, key), width="stretch")
    _show_notice(NOTICE_PREFIX + key)


def _apply(settings: Settings, catalogue: Catalogue, clip: ClipSource | str | None, frames: list[int] | None,
           pid: str | None, key: str) -> None:
    """The button's callback: store the correction, or say why not."""
    try:
        if not state.editing_enabled():
            raise EngineError("editing is switched off on this server")
        if pid is None or pid not in catalogue.products:
            raise EngineError(f"unknown product {pid!r}: choose one of the catalogue")
        if clip is None:
            raise EngineError("the clip is no longer available: it cannot be corrected")
        if isinstance(clip, str):
            if not Path(clip).is_file():
                raise EngineError(f"{Path(clip).name}: clip not found")
            clip = ClipSource.from_file(clip)
        engine = state.get_engine(settings, catalogue)
        with clip.materialise() as path:
            stored = engine.correct(path, pid, frames, clip_name=clip.name, clip_sha256=clip.sha256)
        frames_text = ", ".join(f"#{c.frame_index}" for c in stored)
        message = (f"Learned: {len(stored)} frame(s) of {clip.name} ({frames_text}) now count as examples of "
                   f"{_label(catalogue, pid)}. The next match uses them.")
        st.session_state[NOTICE_PREFIX + key] = ("success", message)
        st.toast(message, icon=":material/school:")
    except EngineError as e:
        st.session_state[NOTICE_PREFIX + key] = ("error", f"Not stored: {e}")
    except Exception:  # noqa: BLE001 - a callback's traceback would reach the page
        log.exception("cannot store a correction")
        st.session_state[NOTICE_PREFIX + key] = ("error", "Not stored: something went wrong; the details are in "
                                                          "the server log.")


def _show_notice(key: str) -> None:
    notice = st.session_state.pop(key, None)
    if notice is None:
        return
    kind, message = notice
    if kind == "success":
        st.success(message, icon=":material/check_circle:")
    else:
        st.error(message, icon=":material/error:")


# --------------------------------------------------------------------------------------------- catalogue
REMOVE_EXAMPLE = "remove-example"  # the confirmation's kind (ui.components.ask)


def examples_panel(settings: Settings, catalogue: Catalogue, editing: bool = True) -> None:
    """The livestream examples of the catalogue's index: product, source clip, frame, when added; removable (after
    a confirmation) while editing is on."""
    store = workspace.corrections_store(settings, catalogue.root)
    _show_notice(LIST_NOTICE)
    pending = asked(REMOVE_EXAMPLE) if editing else None
    if pending is not None:
        confirm(f"Remove the livestream example {pending}?", "Matching stops using it at once. This deletes:",
                [p.name for p in store.files_of(pending)] + ["(and its line in the log is marked removed)"],
                "Remove", _remove, str(store.folder), pending)
    records = store.records()
    if not records:
        st.info("No livestream examples yet. On the Match or Inspect page, say which product a frame or a clip "
                "shows: its regions are stored here as examples of that product, used by every match from then on.",
                icon=":material/school:")
        return
    st.caption(f"{len(records)} corrected frame(s), stored in `{store.folder}` beside the index: a rebuild keeps "
               "them. Each is searched like a catalogue region of its product, in the livestream domain.")
    summary = workspace.index_summary(settings, catalogue.root)
    for c in records:
        unused = ""
        if c.product_id not in catalogue.products:
            unused = " · *no longer in the catalogue*"
        elif summary is not None and c.model_key != summary.model_key:
            unused = " · *made with another model: not used*"
        with st.container(border=True):
            image, text, action = st.columns([1, 5, 1.3], vertical_alignment="center")
            with image:
                image_or_placeholder(thumb(str(store.image_path(c.correction_id)), c.boxes[0], (160, 160)))
            with text:
                st.markdown(f"**{_label(catalogue, c.product_id)}**{unused}  \n`{c.clip}` · frame #{c.frame_index} "
                            f"({c.time_s:.1f} s) · {len(c.boxes)} region(s) · added "
                            f"{c.added_at[:16].replace('T', ' ')}")
            if editing:  # the button only asks; the dialog removes
                action.button("Remove…", key=f"corrections.remove.{c.correction_id}", icon=":material/delete:",
                              on_click=ask, args=(REMOVE_EXAMPLE, c.correction_id), width="stretch")


def _remove(folder: str, correction_id: str) -> None:
    CorrectionStore(folder).remove([correction_id])
    st.session_state[LIST_NOTICE] = ("success", f"Removed the livestream example {correction_id}.")
