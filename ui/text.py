"""Text is text: strings from a catalogue, a file or a visitor, made safe for the places that interpret them
(plain Python, no Streamlit).

Streamlit renders Markdown (GitHub-flavoured, with its own ``:red[...]``, ``:material/...:`` and ``$...$``
directives) in ``st.markdown``, captions, alerts, expander and tab labels and image captions; a product name
``![px](http://127.0.0.1:8799/px.png)`` there makes every visitor's browser fetch that address. Plotly interprets
``<a href>``, ``<b style>``, ``<span>`` and ``<br>`` in labels and hover text. So every such string passes one of:

* ``md(text)``: every Markdown, directive and HTML character escaped (shown as typed);
* ``code(text)``: an inline code span that holds any text verbatim (a fence longer than its backtick runs);
* ``plot(text)``: ``&``, ``<`` and ``>`` escaped for Plotly labels and hover text.
"""

from __future__ import annotations

import html
import re

_AUTOLINK = re.compile(r"://|(?i:www)\.")  # GFM links a bare http://… or www.… by itself
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~$])")  # with [ and < escaped no link, image, directive or tag forms


def md(text: object) -> str:
    """``text`` shown as typed in Markdown: the characters that open a link, an image, a tag, a directive
    (``:red[...]``), emphasis, code, a table cell, strike-through or maths are backslash-escaped (CommonMark shows an
    escaped character as itself), and ``://`` and ``www.`` so that no bare address becomes a link; line breaks
    become spaces. Text without them is returned as it is."""
    plain = " ".join(str(text).splitlines())
    escaped = _MARKDOWN.sub(r"\\\1", plain)
    return _AUTOLINK.sub(lambda m: m.group(0).replace("/", "\\/").replace(".", "\\."), escaped)  # no autolink


def code(text: object) -> str:
    """An inline code span holding ``text`` verbatim, whatever backticks it holds."""
    plain = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", plain)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if plain.startswith("`") or plain.endswith("`") or not plain.strip() else ""
    return f"{fence}{pad}{plain}{pad}{fence}"


def plot(text: object) -> str:
    """``text`` for a Plotly label or hover text: its HTML-like markup shown, never drawn."""
    return html.escape(str(text), quote=False)
