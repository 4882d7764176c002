"""The Catalogue page: browsing, details with regions, index statistics and rebuild, adding a product."""

from __future__ import annotations

from engine.config import Windows

import io
import json
from pathlib import Path

import numpy as np
import pytest
from support.apptest import APP, TIMEOUT, assert_clean, open_app, page_text, use_catalogue
from PIL import Image
from streamlit.testing.v1 import AppTest

from engine.io.catalogue import load_catalogue
from engine.io.editing import copy_catalogue
from engine.categories import english
from engine.index.store import IndexSummary
from ui.adding import HAND_DRAWN, to_percent, to_pixels
from ui.text import md
from ui.catalogue_views import build_note


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    img = np.full((120, 90, 3), 245, np.uint8)
    img[20:100, 15:75] = colour
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def small(monkeypatch: pytest.MonkeyPatch, demo_dir: Path, engine) -> Path:
    """The small demo, already indexed (the engine fixture builds its index)."""
    use_catalogue(monkeypatch, demo_dir)
    return demo_dir


@pytest.fixture()
def editable(monkeypatch: pytest.MonkeyPatch, demo_dir: Path, tmp_path: Path) -> Path:
    copy = copy_catalogue(demo_dir, tmp_path / "shop")
    use_catalogue(monkeypatch, copy)
    return copy


def test_browse_products_and_their_regions(small: Path) -> None:
    cat = load_catalogue(small)
    at = open_app("catalogue")
    text = page_text(at)
    for p in cat.products.values():
        assert f'title="{p.name}"' in text
    assert f"{len(cat.products)} / {len(cat.products)}" in text  # products indexed
    assert "Rebuild index" in [b.label for b in at.button]

    first = next(iter(cat.products.values()))
    captions = [c for img in at.image for c in img.captions]
    assert [Path(i).name for i in first.images] == [c for c in captions if c.endswith(".jpg")]

    # Details of another product
    other = list(cat.products)[2]
    at.button(key=f"catalogue.view.{other}").click().run()
    assert_clean(at)
    assert at.selectbox(key="catalogue.selected").value == other
    assert f"**{cat.products[other].name}**" in page_text(at)


def test_search_and_category_filter(small: Path) -> None:
    cat = load_catalogue(small)
    target = list(cat.products.values())[1]
    at = open_app("catalogue")
    at.text_input(key="catalogue.query").set_value(target.name.split()[-1].upper()).run()
    assert_clean(at)
    expected = [p for p in cat.products.values() if target.name.split()[-1].lower() in p.name.lower()]
    assert f"{len(expected)} of {len(cat.products)} products" in page_text(at)

    at.text_input(key="catalogue.query").set_value("").run()
    category = english(target.category)
    at.selectbox(key="catalogue.category").set_value(category).run()
    assert_clean(at)
    same = [p for p in cat.products.values() if english(p.category) == category]
    assert f"{len(same)} of {len(cat.products)} products" in page_text(at)

    at.text_input(key="catalogue.query").set_value("no such product").run()
    assert any("No product matches" in i.value for i in at.info)


def test_rebuild_index(small: Path) -> None:
    at = open_app("catalogue")
    at.button(key="catalogue.rebuild").click().run()
    assert_clean(at)
    assert at.success and at.success[0].value.startswith("Index rebuilt: 5 products")
    assert "re-published from the embedding cache in" in page_text(at)  # nothing changed: nothing embedded


def test_build_note_says_what_happened() -> None:
    def summary(seconds, hits, misses):
        return IndexSummary("b", "k", 320, 30, 5, 50, "", seconds, "e", "d", cache_hits=hits, cache_misses=misses)

    assert build_note(summary(0.01, 24, 0)) == "re-published from the embedding cache in 0.01 s (24 images cached, 0 embedded)"
    assert build_note(summary(12.5, 20, 4)) == "built in 12.5 s (20 images cached, 4 embedded)"
    assert build_note(summary(3.0, 0, 0)) == "built in 3 s"  # an older sidecar without cache counts
    assert build_note(summary(None, 0, 0)) == "built in an unknown time"


def test_box_sliders_in_percent() -> None:
    assert to_percent((9.5, 12.0, 80.2, 119.0), (90, 120)) == ((10, 90), (10, 100))
    assert to_percent(None, (90, 120)) == HAND_DRAWN
    assert to_percent((89.9, 0, 90, 1), (90, 120))[0] == (99, 100)  # never an empty span
    assert to_pixels((20, 80), (10, 90), (90, 120)) == (18.0, 12.0, 72.0, 108.0)


def _box_widget(at, kind: str, image: int):
    """The box checkbox ("use") or slider ("x", "y") of the n-th chosen image."""
    widgets = at.checkbox if kind == "use" else at.slider
    found = [w for w in widgets if w.key and w.key.startswith(f"catalogue.box.{image}.") and w.key.endswith(kind)]
    assert len(found) == 1, [w.key for w in widgets]
    return found[0]


def test_add_a_product_with_one_confirmed_box_then_it_is_indexed(editable: Path) -> None:
    at = open_app("catalogue")
    at.text_input(key="catalogue.new_id").set_value("777001")
    at.text_input(key="catalogue.new_name").set_value("Studio green skirt")
    at.selectbox(key="catalogue.new_category").set_value("短裙")
    at.file_uploader(key="catalogue.new_images").set_value(
        [("front.png", _png((20, 160, 60)), "image/png"), ("back.png", _png((30, 140, 70)), "image/png")]).run()
    assert_clean(at)
    assert [c.label for c in at.checkbox if c.key.startswith("catalogue.box.")] == ["Use this box as the product"] * 2
    assert not any(c.value for c in at.checkbox if c.key.startswith("catalogue.box."))  # nothing confirmed unasked
    _box_widget(at, "use", 0).check().run()
    _box_widget(at, "x", 0).set_value((50, 50)).run()  # no area: refused, nothing written, the form is kept
    at.button[[b.label for b in at.button].index("Add product")].click().run()
    assert_clean(at)
    assert at.error and "has no area" in at.error[0].value
    assert not (editable / "image" / "777001").exists()

    _box_widget(at, "x", 0).set_value((20, 80))
    _box_widget(at, "y", 0).set_value((10, 90)).run()
    at.button[[b.label for b in at.button].index("Add product")].click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert at.success and "Added Studio green skirt (777001) with 2 image(s), 1 with a confirmed" in at.success[0].value
    assert sorted(p.name for p in (editable / "image" / "777001").iterdir()) == ["0.jpg", "1.jpg"]
    annotations = editable / "image_annotation" / "777001"
    assert sorted(p.name for p in annotations.iterdir()) == ["0.json"]  # the unconfirmed image: left to detection
    written = json.loads((annotations / "0.json").read_text(encoding="utf-8"))["annotations"]
    assert written == [{"box": [18.0, 12.0, 72.0, 108.0], "label": "短裙", "instance_id": 1, "viewpoint": 0,
                        "display": 1}]  # 20-80 % of 90 px, 10-90 % of 120 px
    product = load_catalogue(editable).products["777001"]
    assert product.name == "Studio green skirt" and product.category == "短裙"
    assert [Path(r.image_path).name for r in product.regions] == ["0.jpg"]
    assert "6 / 6" in page_text(at)  # the index was rebuilt with it
    assert at.selectbox(key="catalogue.selected").value == "777001"
    assert at.text_input(key="catalogue.new_id").value == ""  # the form is ready for the next product
    assert not [c for c in at.checkbox if c.key.startswith("catalogue.box.")]


def test_a_folder_catalogue_shows_the_images_without_boxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "red-shirt").mkdir(parents=True)
    (root / "red-shirt" / "a.png").write_bytes(_png((200, 30, 40)))
    use_catalogue(monkeypatch, root)
    at = open_app("catalogue")
    at.text_input(key="catalogue.new_id").set_value("green-skirt")
    at.file_uploader(key="catalogue.new_images").set_value([("g.png", _png((20, 160, 60)), "image/png")]).run()
    assert_clean(at)
    assert "keeps no boxes" in page_text(at) and not at.checkbox  # this layout has no annotation files
    assert any(c.startswith("g.png · 90×120") for c in page_text(at).splitlines())
    at.button[[b.label for b in at.button].index("Add product")].click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert (root / "green-skirt" / "0.jpg").is_file() and not (root / "image_annotation").exists()


@pytest.mark.parametrize(
    "pid, files, message",
    [
        ("777002", [("ok.png", _png((200, 0, 0))), ("broken.jpg", b"\xff\xd8\xff not really a jpeg")], "broken.jpg"),
        ("../escape", [("ok.png", _png((200, 0, 0)))], "may not contain"),
        ("900001", [("ok.png", _png((200, 0, 0)))], "already exists"),
        ("777003", [], "at least one image"),
    ],
)
def test_a_refused_product_writes_nothing(editable: Path, pid: str, files: list, message: str) -> None:
    before = sorted(str(p.relative_to(editable)) for p in editable.rglob("*"))
    at = open_app("catalogue")
    at.text_input(key="catalogue.new_id").set_value(pid)
    at.text_input(key="catalogue.new_name").set_value("Refused")
    if files:
        at.file_uploader(key="catalogue.new_images").set_value([(n, d, "image/png") for n, d in files])
    at.button[[b.label for b in at.button].index("Add product")].click().run()
    assert_clean(at)
    assert at.error and message in at.error[0].value
    assert sorted(str(p.relative_to(editable)) for p in editable.rglob("*")) == before
    assert at.text_input(key="catalogue.new_id").value == pid  # kept, to be corrected


@pytest.mark.slow
def test_builtin_demo_is_read_only_and_can_be_copied(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path))
    use_catalogue(monkeypatch, "")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).switch_page("pages/catalogue.py").run()  # a fresh start
    assert_clean(at)
    assert any("read-only" in i.value for i in at.info)
    # Was "not built yet": on a first start the page now indexes the built-in demo right away (ui.startup).
    assert [(s.label.split(",")[0], s.state) for s in at.status] == [
        ("The built-in demo is ready: 8 products indexed", "complete")]
    assert "8 / 8" in page_text(at)
    at.button(key="catalogue.copy").click().run()
    assert_clean(at)
    copy = tmp_path / "catalogues" / "user"
    assert (copy / "image").is_dir() and (copy / "video").is_dir()
    assert at.text_input(key="cfg.catalogue").value == str(copy)
    assert at.success and md(str(copy)) in at.success[0].value  # the path shown as text
    assert not any("read-only" in i.value for i in at.info)
    # issue 32: a catalogue of one's own is indexed as soon as it is opened too, not at its first match
    assert [(s.label.split(" is ready")[0], s.state) for s in at.status] == [("`user`", "complete")]
    assert at.text_input(key="catalogue.new_id")  # the form is offered now


@pytest.mark.slow
def test_train_the_garment_head_and_it_is_selected(small: Path) -> None:
    at = open_app("catalogue")
    text = page_text(at)
    assert "images with annotated garment boxes" in text
    at.button(key="train.garment").click().run()
    assert_clean(at)
    assert any("It is now selected under Models" in s.value for s in at.success), page_text(at)
    chosen = at.selectbox(key="cfg.garment_model").value
    assert chosen.endswith(".pt") and Path(chosen).is_file()
    assert at.session_state["livematch.settings"].models.garment_model == chosen
    assert at.session_state["livematch.settings"].search.windows == Windows.POOLED  # Standard + garment head: pooled
    at.segmented_control(key="cfg.search").set_value("Exhaustive").run()
    assert at.session_state["livematch.settings"].search.windows == Windows.EXHAUSTIVE  # Exhaustive: boxes cropped
    assert Path(chosen).name in page_text(at) or any(Path(chosen).name in str(df.value) for df in at.dataframe)


def test_a_rectangle_dragged_on_the_image_becomes_the_box() -> None:
    """The plotly box selection (preview pixels) as a box in the image's own pixels, clipped; nothing drawn: None."""
    from ui.adding import drawn_box

    selection = {"selection": {"box": [{"xref": "x", "yref": "y", "x": [160.0, 40.0], "y": [20.0, 300.0]}]}}
    assert drawn_box(selection, preview_width=320, size=(640, 480)) == (80.0, 40.0, 320.0, 480.0)  # y clipped
    assert drawn_box({"selection": {"box": []}}, 320, (640, 480)) is None
    assert drawn_box(None, 320, (640, 480)) is None
    flat = {"selection": {"box": [{"x": [10.0, 10.2], "y": [5.0, 50.0]}]}}
    assert drawn_box(flat, 320, (320, 240)) is None  # no area


def test_a_read_only_catalogue_offers_no_remove_and_no_add(monkeypatch: pytest.MonkeyPatch, demo_dir: Path,
                                                           tmp_path: Path) -> None:
    """Issue 32: the Catalogue page offered "Remove product" on a read-only shared data folder."""
    copy = copy_catalogue(demo_dir, tmp_path / "shared")
    folders = (copy / "image", copy / "image_annotation", copy)
    for d in folders:
        d.chmod(0o555)
    try:
        use_catalogue(monkeypatch, copy)
        at = open_app("catalogue")
        pid = sorted(load_catalogue(copy).products)[1]
        at.button(key=f"catalogue.view.{pid}").click().run()
        assert_clean(at)
        assert at.button(key="catalogue.remove").disabled
        text = page_text(at)
        assert f"Products cannot be removed: {md(str(copy))} is not writable" in text  # the path shown as text
        assert "Products cannot be added here" in text and not [b for b in at.button if b.key == "catalogue.add"]
    finally:
        for d in folders:
            d.chmod(0o755)
