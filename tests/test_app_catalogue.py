"""The Catalogue page: browsing, details with regions, index statistics and rebuild, adding a product."""

from __future__ import annotations

from engine.config import Windows

import io
from pathlib import Path

import numpy as np
import pytest
from apptest_support import assert_clean, open_app, page_text, use_catalogue
from PIL import Image

from engine.io.catalogue import load_catalogue
from engine.io.editing import copy_catalogue
from engine.categories import english


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


def test_add_a_product_then_it_is_indexed(editable: Path) -> None:
    at = open_app("catalogue")
    at.text_input(key="catalogue.new_id").set_value("777001")
    at.text_input(key="catalogue.new_name").set_value("Studio green skirt")
    at.selectbox(key="catalogue.new_category").set_value("短裙")
    at.file_uploader(key="catalogue.new_images").set_value(
        [("front.png", _png((20, 160, 60)), "image/png"), ("back.png", _png((30, 140, 70)), "image/png")])
    at.button[[b.label for b in at.button].index("Add product")].click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert at.success and "Added Studio green skirt (777001) with 2 image(s)" in at.success[0].value
    assert sorted(p.name for p in (editable / "image" / "777001").iterdir()) == ["0.jpg", "1.jpg"]
    product = load_catalogue(editable).products["777001"]
    assert product.name == "Studio green skirt" and product.category == "短裙"
    assert "6 / 6" in page_text(at)  # the index was rebuilt with it
    assert at.selectbox(key="catalogue.selected").value == "777001"
    assert at.text_input(key="catalogue.new_id").value == ""  # the form is ready for the next product


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


def test_builtin_demo_is_read_only_and_can_be_copied(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path))
    use_catalogue(monkeypatch, "")
    at = open_app("catalogue")
    assert any("read-only" in i.value for i in at.info)
    assert "Index" in page_text(at) and "not built yet" in page_text(at)
    at.button(key="catalogue.copy").click().run()
    assert_clean(at)
    copy = tmp_path / "catalogues" / "user"
    assert (copy / "image").is_dir() and (copy / "video").is_dir()
    assert at.text_input(key="cfg.catalogue").value == str(copy)
    assert at.success and str(copy) in at.success[0].value
    assert not any("read-only" in i.value for i in at.info)
    assert at.text_input(key="catalogue.new_id")  # the form is offered now


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
    assert at.session_state["livematch.settings"].search.windows == Windows.POOLED  # Fast + garment head: pooled
    assert Path(chosen).name in page_text(at) or any(Path(chosen).name in str(df.value) for df in at.dataframe)
