"""Text is text (issue 30): product names, shops, categories, clip file names, uploads and report paths that hold
Markdown, HTML or Plotly markup are shown as typed on all four pages; nothing of them becomes an image, a link,
a tag or styled text (ui.text is the one helper that escapes them)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from support.apptest import assert_clean, open_app, plotly_figures, use_catalogue

from engine.config import Settings
from engine.io.editing import copy_catalogue
from engine.workspace import corrections_store


def file_digest_of(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()

PIXEL = "http://127.0.0.1:8799/px.png"
HOSTILE = f'![px]({PIXEL}) <b style="font-size:80px">x</b> <a href="http://127.0.0.1:8799/a">a</a> :red[red] `tick'
CLIP = "evil`clip <b>[x]"  # a file name: no "/" can be in it
RAW_MARKDOWN = re.compile(r"(?<!\\)!\[px|(?<!\\)<(?:b style|a href|b>)|:red\[red")  # the hostile text, unescaped
CODE_SPAN = re.compile(r"(?<![`\\])(`+)(?!`)(.+?)(?<!`)\1(?!`)")  # an escaped \` opens none
RAW_HTML = re.compile(r"<(?:b|a|img)\b[^>]*(?:style|href|src)=")


@pytest.fixture()
def hostile(monkeypatch: pytest.MonkeyPatch, demo_dir: Path, tmp_path: Path) -> Path:
    """A copy of the demo whose every name, shop and one category label are hostile, with a clip named like an
    attack, in a home of its own."""
    root = copy_catalogue(demo_dir, tmp_path / "shop")
    ids = sorted(p.name for p in (root / "image").iterdir())
    (root / "products.json").write_text(json.dumps({pid: {"name": f"{HOSTILE} {pid}", "shop": HOSTILE}
                                                    for pid in ids}), encoding="utf-8")
    ann = next((root / "image_annotation").rglob("*.json"))
    doc = json.loads(ann.read_text(encoding="utf-8"))
    for a in doc.get("annotations", []):
        a["label"] = HOSTILE
    ann.write_text(json.dumps(doc), encoding="utf-8")
    video = next((root / "video").glob("*.mp4"))
    shutil.copy(video, root / "video" / f"{CLIP}.mp4")
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path / "home"))
    use_catalogue(monkeypatch, root)
    return root


def _markdown_texts(at) -> list[str]:
    """Every string the page renders as Markdown: bodies, captions, alerts, headings, labels, image captions."""
    out: list[str] = []
    for kind in ("markdown", "caption", "success", "info", "warning", "error", "title", "subheader", "header",
                 "toast"):
        out += [str(e.value) for e in getattr(at, kind, [])]
    out += [c for img in at.image for c in img.captions]
    for kind in ("expander", "tabs", "button", "selectbox", "text_input", "radio", "toggle"):
        out += [str(getattr(e, "label", "")) for e in at.get(kind)]
    return out


def _assert_inert(at, where: str) -> None:
    assert_clean(at)
    for text in _markdown_texts(at):
        outside_code = CODE_SPAN.sub("", text)  # a code span shows its text verbatim: inert
        assert not RAW_MARKDOWN.search(outside_code), f"{where}: raw markup in {text!r}"
    for html in at.get("html"):
        assert not RAW_HTML.search(html.value), f"{where}: raw HTML in {html.value!r}"
    for fig in plotly_figures(at):
        spec = json.dumps(fig)
        assert "<b style" not in spec and "<a href" not in spec and "<b>[x]" not in spec, f"{where}: Plotly markup"


@pytest.mark.slow
def test_hostile_names_stay_text_on_all_four_pages(hostile: Path) -> None:
    at = open_app()  # Match: a sample clip, matched (banner, cards, frame captions, heat map)
    _assert_inert(at, "match")
    at.radio(key="match.mode").set_value("Sample clip from the catalogue").run()
    picker = at.selectbox(key="match.sample")
    picker.set_value(next(o for o in picker.options if not o.startswith(CLIP))).run()
    _assert_inert(at, "match, a sample")
    assert any("px.png" in t for t in _markdown_texts(at)), "the hostile name is shown (as text)"
    at.radio(key="match.mode").set_value("Upload a clip").run()
    clip = next((hostile / "video").glob("9*.mp4")).read_bytes()
    at.file_uploader(key="match.upload").set_value((f"{CLIP}.mp4", clip, "video/mp4")).run()
    _assert_inert(at, "match, an upload")
    key = f"match.correct.{file_digest_of(clip)[:16]}.clip"  # stored with the clip's hostile file name
    at.button(key=f"{key}.apply").click().run()
    at.button(key=f"{key}.confirm").click().run()
    _assert_inert(at, "match, a correction stored")
    assert corrections_store(Settings.from_env(), hostile).records(), "the correction was stored"

    at.switch_page("pages/catalogue.py").run()  # Catalogue: cards, details, categories, problems, examples
    _assert_inert(at, "catalogue")
    assert any(CLIP in t for t in _markdown_texts(at)), "the example's clip name is listed (in a code span)"

    at.switch_page("pages/evaluate.py").run()  # Evaluate: run it, then the report and its charts
    at.button(key="evaluate.run").click().run()
    _assert_inert(at, "evaluate")
    assert plotly_figures(at), "the charts are drawn"

    at.switch_page("pages/inspect.py").run()  # Inspect: the report clip by clip
    _assert_inert(at, "inspect")
    for i, option in enumerate(at.selectbox(key="inspect.clip").options):
        at.selectbox(key="inspect.clip").select_index(i).run()
        _assert_inert(at, f"inspect, clip {option}")


def test_the_helper_escapes_what_markdown_html_and_plotly_read() -> None:
    from ui.text import code, md, plot

    assert md(HOSTILE) == (r'!\[px\](http:\/\/127.0.0.1:8799/px.png) \<b style="font-size:80px"\>x\</b\> '
                           r'\<a href="http:\/\/127.0.0.1:8799/a"\>a\</a\> :red\[red\] \`tick')
    assert md("see www.example.com") == r"see www\.example.com"
    assert md("Query: the frame's region") == "Query: the frame's region"  # plain text is left as it is
    assert md("two\nlines") == "two lines"
    assert code("a`b") == "``a`b``" and code("`x") == "`` `x ``" and code("plain") == "`plain`"
    assert plot('<a href="x">y</a> & <b style="a">') == '&lt;a href="x"&gt;y&lt;/a&gt; &amp; &lt;b style="a"&gt;'
