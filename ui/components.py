"""Reusable page pieces: header, error guard, product cards, empty states, styling."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import streamlit as st

from engine.categories import english
from engine.errors import EngineError
from ui.text import code, md

from .names import display_name, has_own_name

log = logging.getLogger("livematch.app")

CSS = """
<style>
.block-container {padding-top: 2.2rem; padding-bottom: 3rem; max-width: 1320px;}
[data-testid="stImage"] img {border-radius: 8px;}
.lm-subtitle {color: #5b6275; font-size: 1.02rem; margin-top: -0.6rem; margin-bottom: 1.2rem;}
.lm-badge {display: inline-block; font-size: 0.75rem; font-weight: 600; padding: 0.1rem 0.5rem; border-radius: 999px;
  background: #eef0f6; color: #4b5263; margin-top: 0.15rem;}
.lm-badge.best {background: #ede9fe; color: #4f46e5;}
.lm-name {font-weight: 600; font-size: 0.98rem; line-height: 1.3; height: 2.6em; margin: 0.45rem 0 0.15rem 0;
  overflow: hidden;}
.lm-meta {color: #6b7280; font-size: 0.8rem; line-height: 1.35; height: 2.7em; overflow: hidden;}
.lm-line {white-space: nowrap; overflow: hidden; text-overflow: ellipsis;}
.lm-name, .lm-meta, .lm-line, [data-testid="stCaptionContainer"], [data-testid="stMarkdownContainer"] {
  font-family: "Source Sans", "Source Sans Pro", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
    "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif;}
.lm-votes {display: flex; justify-content: space-between; font-size: 0.82rem; margin-top: 0.55rem; color: #1f2433;}
.lm-bar {height: 6px; background: #eef0f6; border-radius: 999px; margin: 0.3rem 0 0.55rem 0; overflow: hidden;}
.lm-bar > div {height: 100%; background: #4f46e5; border-radius: 999px;}
.lm-row {display: flex; justify-content: space-between; font-size: 0.8rem; color: #6b7280; line-height: 1.6;}
.lm-row b {color: #1f2433;}
.lm-tiles {display: grid; gap: 0.75rem;}
.lm-tile {border: 1px solid #e3e6f0; border-radius: 0.6rem; padding: 0.75rem 1rem; background: #fff;}
.lm-tile-label {color: #5b6275; font-size: 0.85rem;}
.lm-tile-value {font-size: 1.55rem; font-weight: 600; line-height: 1.25; margin-top: 0.2rem; color: #1f2433;}
.lm-tile-value.text {font-size: 1.02rem; line-height: 1.35; margin-top: 0.35rem;}
.lm-tile-note {color: #6b7280; font-size: 0.76rem; margin-top: 0.15rem;}
</style>
"""


def inject_css() -> None:
    st.html(CSS)


def page_header(title: str, subtitle: str) -> None:
    st.title(title, anchor=False)
    st.html(f'<div class="lm-subtitle">{subtitle}</div>')


@contextlib.contextmanager
def guard(action: str = "this page") -> Iterator[None]:
    """Show engine errors as a one-line message, and anything unexpected as a friendly error (logged in full)."""
    try:
        yield
    except EngineError as e:
        st.error(md(e), icon=":material/error:")
    except Exception:  # noqa: BLE001 - nothing may reach the user as a traceback
        log.exception("unexpected error in %s", action)
        st.error(f"Something went wrong while loading {md(action)}. The details are in the server log; "
                 "try again, or change the settings in the sidebar.", icon=":material/error:")


def category_label(category: str) -> str:
    """English category name; '' stays ''."""
    return english(category) if category else ""


def image_or_placeholder(data: bytes | None, caption: str | None = None) -> None:
    if data is not None:
        st.image(data, caption=None if caption is None else md(caption), width="stretch")
    else:
        st.html('<div style="aspect-ratio:1;background:#f4f5fb;border-radius:8px;display:flex;'
                'align-items:center;justify-content:center;color:#9ca3af;font-size:0.85rem">no image</div>')
        if caption:
            st.caption(md(caption))


def product_card(rank: int, name: str, product_id: str, category: str, image: bytes | None, votes: int,
                 n_frames: int, share: float, best: float, mean: float, absent: bool = False) -> None:
    """A product of a match: image, rank, name, id and category, votes with their share, similarities.
    The id is shown once: a product without a name of its own is called "short-sleeve dress · 000134"
    (``ui.names.display_name``). When the verdict is "not in the catalogue" (``absent``) the first card is only the
    nearest product, and its badge says so instead of "Best match"."""
    if rank == 1 and not absent:
        badge = '<span class="lm-badge best">&#9733; Best match</span>'
    elif rank == 1:
        badge = '<span class="lm-badge">Nearest, not a match</span>'
    else:
        badge = f'<span class="lm-badge">#{rank}</span>'

    width = f"{min(max(share, 0.0), 1.0) * 100:.0f}%"
    title = display_name(name, product_id, category)
    cat = category_label(category)
    # two lines under the name: its id and category, or for a product named "category · id", that it has no name
    first, second = (product_id, cat) if has_own_name(name, product_id, category) else ("", "no name in the catalogue")
    with st.container(border=True):
        image_or_placeholder(image)
        st.html(
            f'{badge}<div class="lm-name" title="{_escape(title)}">{_escape(title)}</div>'
            f'<div class="lm-meta"><div class="lm-line">{_escape(first) or "&nbsp;"}</div>'
            f'<div class="lm-line" title="{_escape(second)}">{_escape(second) or "&nbsp;"}</div></div>'
            f'<div class="lm-votes"><span>{votes} of {n_frames} frame{"s" if n_frames != 1 else ""}</span>'
            f'<b>{share:.0%}</b></div><div class="lm-bar"><div style="width:{width}"></div></div>'
            f'<div class="lm-row" title="The ranking key: best similarity per frame, averaged over the frames">'
            f'<span>evidence</span><b>{mean:.3f}</b></div>'
            f'<div class="lm-row"><span>best similarity</span><span>{best:.2f}</span></div>'
        )


def stat_tiles(tiles: list[tuple[str, str, str]]) -> None:
    """A row of equal tiles: (label, value, note); long values use a smaller font instead of being cut."""
    cells = []
    for label, value, note in tiles:
        kind = "lm-tile-value text" if len(str(value)) > 9 else "lm-tile-value"
        cells.append(f'<div class="lm-tile"><div class="lm-tile-label">{_escape(label)}</div>'
                     f'<div class="{kind}">{_escape(value)}</div>'
                     + (f'<div class="lm-tile-note">{_escape(note)}</div>' if note else "") + "</div>")
    st.html(f'<div class="lm-tiles" style="grid-template-columns: repeat({len(tiles)}, 1fr)">{"".join(cells)}</div>')


def empty_state(icon: str, title: str, text: str) -> None:
    with st.container(border=True):
        st.markdown(f"#### {icon} {title}")
        st.markdown(text)


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))


# --------------------------------------------------------------------------------------------- confirmation
CONFIRM_KEY = "livematch.confirm"  # (kind, target) of the destructive action waiting for its confirmation
EDITING_OFF = ("Editing is switched off on this server (LIVEMATCH_EDITING, see docs/security.md): the catalogue, its "
               "index and its livestream examples can be viewed here, not changed.")


def ask(kind: str, target: str) -> None:
    """on_click of a button that starts a destructive action: open its confirmation on the next run."""
    st.session_state[CONFIRM_KEY] = (kind, target)


def asked(kind: str) -> str | None:
    """The target of a ``kind`` action waiting for confirmation (None when none is)."""
    pending = st.session_state.get(CONFIRM_KEY)
    return pending[1] if isinstance(pending, tuple) and pending[0] == kind else None


def _forget_question() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def confirm(title: str, text: str, details: list[str], label: str, action, *args, note: str = "") -> None:
    """A modal dialog asking once before a destructive action: what it deletes, then ``label`` (runs
    ``action(*args)``, then the page reruns without the dialog) or Cancel; ``note`` below the list. The page's own buttons only open this
    dialog, so after it closes no button under the cursor deletes anything. An EngineError stays in the dialog."""

    def body() -> None:
        st.markdown(text)
        if details:
            shown = details[:12] + ([f"… and {len(details) - 12} more"] if len(details) > 12 else [])
            st.markdown("\n".join(f"- {code(d)}" for d in shown))
        if note:
            st.caption(note)
        yes, no = st.columns(2)
        if no.button("Cancel", key="confirm.cancel", width="stretch"):
            _forget_question()
            st.rerun()
        if yes.button(label, key="confirm.yes", type="primary", icon=":material/delete:", width="stretch"):
            try:
                action(*args)
            except EngineError as e:
                st.error(f"Not done: {md(e)}", icon=":material/error:")
                return
            _forget_question()
            st.rerun()

    st.dialog(title, on_dismiss=_forget_question)(body)()
