"""Corrections in the app: "this frame (or this clip) shows product X" on Match and Inspect, and the livestream
examples on the Catalogue page.

A correction control belongs to one result: its widget keys carry the clip's identity (the caller puts the clip's
SHA-256 or id in ``key``), so the control under another clip's result never shows an earlier choice. It names the
clip file and the product it will store; pressing it opens a dialog that says exactly what will be written (how many
frames of which file, as examples of which product) and stores only on "Store". The store happens in the dialog
button's callback, through the library (``engine.pipeline.correcting.correct_clip``); the control then shows what
was stored with an Undo button beside it, which removes exactly those examples again. A callback's error becomes a
notice under the control, never a traceback. Matches are cached by the corrections' signature (ui.state.engine_key), so the next match
of a clip re-ranks with them."""

from __future__ import annotations

import logging

from pathlib import Path

import streamlit as st

from engine import workspace
from engine.config import Settings
from engine.errors import EngineError
from engine.index.corrections import CorrectionStore
from engine.io.catalogue import Catalogue
from engine.pipeline.correcting import ClipCorrection, correct_clip
from ui.text import code, md

from . import state
from .components import ask, asked, confirm, image_or_placeholder
from .matching import ClipSource
from .media import thumb
from .names import product_label

TOAST_PREFIX = "correcting.toast."  # + the control's key: the message of a store, toasted once by the next run
NOTICE_PREFIX = "correcting.notice."  # + the control's key: ("success" | "error" | "info", message, stored ids)
CLOSE_PREFIX = "correcting.close."  # + the control's key: the dialog's Store or Cancel was pressed: close it
HINT_PREFIX = "correcting.hint."  # + the control's key: a hint shown in the open dialog
LIST_NOTICE = "correcting.notice.list"

log = logging.getLogger(__name__)


def _label(catalogue: Catalogue, pid: str) -> str:
    p = catalogue.products.get(pid)
    return product_label(p.name, pid) if p is not None else pid


def _clip_name(clip: ClipSource | str | None) -> str:
    if isinstance(clip, ClipSource):
        return clip.name
    return Path(clip).name if clip else "this clip"


def frames_phrase(frames: list[int] | None, n_default: int) -> str:
    """"frame #12", "3 frames (#1, #5, #9)", "these 10 frames", or "the 10 sampled frames" (None: the sampled
    frames)."""
    if frames is None:
        return f"the {n_default} sampled frame{'s' if n_default != 1 else ''}"
    if len(frames) == 1:
        return f"frame #{frames[0]}"
    if len(frames) > 3:  # listed under the control already
        return f"these {len(frames)} frames"
    return f"{len(frames)} frames ({', '.join(f'#{i}' for i in frames)})"


def correction_control(settings: Settings, catalogue: Catalogue, clip: ClipSource | str | None,
                       frames: list[int] | None, key: str, default: str | None = None,
                       what: str | None = None) -> None:
    """A product picker and a "Store …" button for ``frames`` (frame numbers; None: the sampled frames) of ``clip``
    (a clip source, or a file path) as livestream examples of the chosen product, after a confirmation. ``key``
    must identify the result shown (the clip's digest or id): widgets of another result never share it. ``what``:
    what is corrected, as a noun phrase (default: the frames and the clip's file name). Not drawn while editing
    is off."""
    if not state.editing_enabled():
        return
    st.session_state.pop(CLOSE_PREFIX + key, None)  # a dialog closed by a full rerun leaves nothing behind
    pids = sorted(catalogue.products)
    name = _clip_name(clip)
    scope = frames_phrase(frames, settings.detection.frames)
    what = what or f"{scope[0].upper()}{scope[1:]} of {md(name)}"
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    with left:
        pid = st.selectbox(f"{what}: which product is shown?", pids,
                           index=pids.index(default) if default in pids else None,
                           key=f"{key}.product", format_func=lambda p: _label(catalogue, p),
                           placeholder="Choose the product it shows",
                           help="Stores the query regions as a livestream example of this product, after you "
                                "confirm: the next match uses it at once, without rebuilding the index. Listed on "
                                "the Catalogue page, and undone from here.")
    with right:
        chosen = pid in catalogue.products
        label = f"Store as {md(_label(catalogue, pid))}…" if chosen else "Store…"  # not "Store as ……" before a choice
        if st.button(label, key=f"{key}.apply", icon=":material/school:", disabled=pid is None,
                     width="stretch", help=f"Asks first: stores {scope} of {name} as examples of the chosen product."):
            _confirm(settings, catalogue, clip, frames, pid, key, scope, name)
    _show_notice(settings, catalogue, key)


@st.dialog("Store a correction?")
def _confirm(settings: Settings, catalogue: Catalogue, clip: ClipSource | str | None, frames: list[int] | None,
             pid: str | None, key: str, scope: str, name: str) -> None:
    """Says what will be written; writes only on "Store" (in its callback), then closes with a full rerun."""
    if st.session_state.pop(CLOSE_PREFIX + key, False):
        st.rerun()  # stored (or refused, or cancelled) in the button's callback: close, show the notice under it
    target = _label(catalogue, pid) if pid else "?"
    st.markdown(f"Store **{md(scope)}** of **{md(name)}** as livestream examples of **{md(target)}**?")
    st.caption("Every later match against this catalogue's index uses them, for every user of the index. You can "
               "undo it right after, under the control, or remove them on the Catalogue page.")
    store_col, cancel_col = st.columns(2)
    store_col.button("Store", key=f"{key}.confirm", type="primary", icon=":material/school:",
                     width="stretch", on_click=_apply, args=(settings, catalogue, clip, frames, pid, key))
    cancel_col.button("Cancel", key=f"{key}.cancel", width="stretch", on_click=_cancel, args=(key,))


def frame_correction(settings: Settings, catalogue: Catalogue, clip: ClipSource | str | None, frame_index: int,
                     key: str) -> None:
    """A frame's "Correct" button: a dialog names the frame and the clip file, asks which product the frame shows,
    and stores it only on "Store"; what was stored is then shown under the button, with its Undo."""
    st.session_state.pop(CLOSE_PREFIX + key, None)  # a full run: no dialog is open, nothing of one is left over
    st.session_state.pop(HINT_PREFIX + key, None)
    if st.button("Correct…", key=f"{key}.open", icon=":material/school:", width="stretch",
                 help=f"Say which product frame #{frame_index} of {_clip_name(clip)} shows (asks before storing)."):
        _frame_dialog(settings, catalogue, clip, frame_index, key)
    _show_notice(settings, catalogue, key, narrow=True)


@st.dialog("Correct a frame")
def _frame_dialog(settings: Settings, catalogue: Catalogue, clip: ClipSource | str | None, frame_index: int,
                  key: str) -> None:
    """The product is chosen here, and the dialog says what "Store" will write."""
    if st.session_state.pop(CLOSE_PREFIX + key, False):
        st.rerun()
    name = _clip_name(clip)
    pids = sorted(catalogue.products)
    pid = st.selectbox(f"Frame #{frame_index} of {md(name)}: which product is shown?", pids, index=None,
                       key=f"{key}.product", format_func=lambda p: _label(catalogue, p),
                       placeholder="Choose the product it shows")
    if pid is None:
        st.caption("Nothing is stored until you choose a product and press Store.")
    else:
        st.markdown(f"Store **frame #{frame_index}** of **{md(name)}** as a livestream example of "
                    f"**{md(_label(catalogue, pid))}**?")
        st.caption("Every later match against this catalogue's index uses it, for every user of the index. You can "
                   "undo it right after, under the frame, or remove it on the Catalogue page.")
    store_col, cancel_col = st.columns(2)
    store_col.button("Store", key=f"{key}.confirm", type="primary", icon=":material/school:", width="stretch",
                     on_click=_apply_chosen, args=(settings, catalogue, clip, [frame_index], key))
    hint = st.session_state.pop(HINT_PREFIX + key, None)
    if hint:
        st.warning(md(hint), icon=":material/touch_app:")
    cancel_col.button("Cancel", key=f"{key}.cancel", width="stretch", on_click=_cancel, args=(key,))


def _apply_chosen(settings: Settings, catalogue: Catalogue, clip: ClipSource | str | None, frames: list[int],
                  key: str) -> None:
    """Store with the product chosen in the dialog (read when Store is pressed); without one, the dialog stays
    open and says so."""
    pid = st.session_state.get(f"{key}.product")
    if pid is None:
        st.session_state[HINT_PREFIX + key] = "Choose the product this frame shows first: nothing was stored."
        return
    _apply(settings, catalogue, clip, frames, pid, key)


def _cancel(key: str) -> None:
    st.session_state[CLOSE_PREFIX + key] = True


def _apply(settings: Settings, catalogue: Catalogue, clip: ClipSource | str | None, frames: list[int] | None,
           pid: str | None, key: str) -> None:
    """The confirmation's callback: store the correction, or say why not."""
    st.session_state[CLOSE_PREFIX + key] = True
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
            stored = correct_clip(engine, ClipCorrection(path, pid, frames, clip_name=clip.name,
                                                         clip_sha256=clip.sha256))
        if not stored:
            st.session_state[NOTICE_PREFIX + key] = (
                "same", f"Already stored: {'this frame' if frames and len(frames) == 1 else 'these frames'} of "
                        f"{clip.name} {'is' if frames and len(frames) == 1 else 'are'} livestream examples of "
                        f"{_label(catalogue, pid)} already; nothing was added.", ())
            return
        frames_text = ", ".join(f"#{c.frame_index}" for c in stored)
        n = len(stored)
        message = (f"Learned: {n} frame{'s' if n != 1 else ''} of {clip.name} ({frames_text}) now "
                   f"count{'s' if n == 1 else ''} as examples of {_label(catalogue, pid)}. The next match uses "
                   f"{'them' if n != 1 else 'it'}.")
        st.session_state[NOTICE_PREFIX + key] = ("success", message, tuple(c.correction_id for c in stored))
        st.session_state[TOAST_PREFIX + key] = message  # shown by the next run: a callback inside a dialog (a
        # fragment) that draws an element makes Streamlit log "A fragment rerun was triggered with a callback ..."
    except EngineError as e:
        st.session_state[NOTICE_PREFIX + key] = ("error", f"Not stored: {e}", ())
    except Exception:  # noqa: BLE001 - a callback's traceback would reach the page
        log.exception("cannot store a correction")
        st.session_state[NOTICE_PREFIX + key] = ("error", "Not stored: something went wrong; the details are in "
                                                          "the server log.", ())


def _undo(settings: Settings, catalogue: Catalogue, key: str, ids: tuple[str, ...]) -> None:
    """Remove the examples this control stored (those still in force)."""
    store = workspace.corrections_store(settings, catalogue.root)
    try:
        live = {c.correction_id for c in store.records()}
        gone = store.remove([i for i in ids if i in live]) if any(i in live for i in ids) else []
        n = len(gone)
        st.session_state[NOTICE_PREFIX + key] = (
            "info", f"Undone: {n} livestream example{'s' if n != 1 else ''} removed." if n
            else "Nothing to undo: those examples were already removed.", ())
    except EngineError as e:
        st.session_state[NOTICE_PREFIX + key] = ("error", f"Not undone: {e}", ())


def _show_notice(settings: Settings, catalogue: Catalogue, key: str, narrow: bool = False) -> None:
    """What the control last did: a stored correction stays shown with its Undo (under it when ``narrow``); other
    notices show once."""
    toast = st.session_state.pop(TOAST_PREFIX + key, None)
    if toast:
        st.toast(md(toast), icon=":material/school:")
    notice = st.session_state.get(NOTICE_PREFIX + key)
    if notice is None:
        return
    kind, message, ids = notice
    if kind == "success":
        text, undo = (st.container(), st.container()) if narrow else st.columns([5, 1], vertical_alignment="center")
        text.success(md(message), icon=":material/check_circle:")
        undo.button("Undo", key=f"{key}.undo", icon=":material/undo:", width="stretch", on_click=_undo,
                    args=(settings, catalogue, key, ids), help="Remove the examples just stored.")
        return
    st.session_state.pop(NOTICE_PREFIX + key, None)
    if kind == "info":
        st.info(md(message), icon=":material/undo:")
    elif kind == "same":
        st.info(md(message), icon=":material/info:")
    else:
        st.error(md(message), icon=":material/error:")


def _show_list_notice(key: str) -> None:
    notice = st.session_state.pop(key, None)
    if notice is None:
        return
    kind, message = notice
    if kind == "success":
        st.success(md(message), icon=":material/check_circle:")
    else:
        st.error(md(message), icon=":material/error:")


# --------------------------------------------------------------------------------------------- catalogue
REMOVE_EXAMPLE = "remove-example"  # the confirmation's kind (ui.components.ask)


def examples_panel(settings: Settings, catalogue: Catalogue, editing: bool = True) -> None:
    """The livestream examples of the catalogue's index: product, source clip, frame, when added; removable (after
    a confirmation) while editing is on."""
    store = workspace.corrections_store(settings, catalogue.root)
    _show_list_notice(LIST_NOTICE)
    pending = asked(REMOVE_EXAMPLE) if editing else None
    if pending is not None:
        confirm(f"Remove the livestream example {md(pending)}?", "Matching stops using it at once. This deletes:",
                [p.name for p in store.files_of(pending)] + ["(and its line in the log is marked removed)"],
                "Remove", _remove, str(store.folder), pending)
    records = store.records()
    if not records:
        st.info("No livestream examples yet. On the Match or Inspect page, say which product a frame or a clip "
                "shows: its regions are stored here as examples of that product, used by every match from then on.",
                icon=":material/school:")
        return
    st.caption(f"{len(records)} corrected frame(s), stored in {code(store.folder)} beside the index: a rebuild keeps "
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
                st.markdown(f"**{md(_label(catalogue, c.product_id))}**{unused}  \n{code(c.clip)} · frame #{c.frame_index} "
                            f"({c.time_s:.1f} s) · {len(c.boxes)} region(s) · added "
                            f"{c.added_at[:16].replace('T', ' ')}")
            if editing:  # the button only asks; the dialog removes
                action.button("Remove…", key=f"corrections.remove.{c.correction_id}", icon=":material/delete:",
                              on_click=ask, args=(REMOVE_EXAMPLE, c.correction_id), width="stretch")


def _remove(folder: str, correction_id: str) -> None:
    CorrectionStore(folder).remove([correction_id])
    st.session_state[LIST_NOTICE] = ("success", f"Removed the livestream example {correction_id}.")
