"""engine.catalog_edit: adding a product validates everything first and writes all or nothing."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.io.catalogue import load_catalogue
from engine.io.editing import add_product, checked_box, copy_catalogue, normalise_category, validate_product_id
from engine.errors import CatalogueError, EngineError, ImageError
from engine.pipeline.regions import proposed_box
from engine.types import Detections


def _image_bytes(
    fmt: str = "PNG", size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 30, 40)
) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def tianchi(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "image" / "100").mkdir(parents=True)
    (root / "image" / "100" / "0.jpg").write_bytes(_image_bytes("JPEG"))
    return root


@pytest.fixture()
def folders(tmp_path: Path) -> Path:
    root = tmp_path / "plain"
    (root / "red-shirt").mkdir(parents=True)
    (root / "red-shirt" / "a.png").write_bytes(_image_bytes())
    return root


def test_adds_a_tianchi_product_with_category_and_name(tianchi: Path) -> None:
    # Was: every image annotated as a whole-image box. Now only the image given a (confirmed) box is annotated.
    files = [("front.png", _image_bytes()), ("back.webp", _image_bytes("WEBP", (40, 80))),
             ("side.jpg", _image_bytes("JPEG"))]
    out = add_product(tianchi, "200", "Blue denim jacket", "short jacket", files, [None, (5, 10, 35, 70), None])
    assert out == tianchi / "image" / "200"
    assert sorted(p.name for p in out.iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    cat = load_catalogue(tianchi)
    p = cat.products["200"]
    assert p.name == "Blue denim jacket"
    assert p.category == "短外套"
    assert len(p.images) == 3
    assert [(Path(r.image_path).name, r.box, r.category, r.instance_id) for r in p.regions] == [
        ("1.jpg", (5.0, 10.0, 35.0, 70.0), "短外套", 1)]
    assert "100" in cat.products and cat.problems == ()
    assert not any(q.name.startswith(".livematch-add") for q in tianchi.iterdir())


def test_only_confirmed_boxes_become_annotation_files(tianchi: Path) -> None:
    files = [(f"{n}.png", _image_bytes()) for n in range(3)]
    add_product(tianchi, "210", "Scarf", "", files, [(4, 4, 60, 44), None, (-20, 10, 30, 400)])
    ann = tianchi / "image_annotation" / "210"
    assert sorted(p.name for p in ann.iterdir()) == ["0.json", "2.json"]
    written = json.loads((ann / "2.json").read_text(encoding="utf-8"))
    assert written["img_name"] == "2.jpg" and written["item_id"] == "210"
    assert written["annotations"] == [{"box": [0.0, 10.0, 30.0, 48.0], "label": "", "instance_id": 1,
                                       "viewpoint": 0, "display": 1}]  # clipped to the 64x48 image


def test_no_box_means_no_annotation_even_with_a_category(tianchi: Path) -> None:
    # Was: a category alone made whole-image annotations (faces and backgrounds indexed as the product).
    add_product(tianchi, "220", "Trousers", "长裤", [("a.png", _image_bytes()), ("b.png", _image_bytes())])
    assert not (tianchi / "image_annotation" / "220").exists()
    assert load_catalogue(tianchi).products["220"].regions == ()  # indexing falls back to detection


@pytest.mark.parametrize("box, message", [
    ((30, 10, 20, 40), "has no area"),
    ((10, 10, 10, 40), "has no area"),
    ((100, 60, 200, 90), "outside the 64x48 image"),
    ((-50, -50, -1, -1), "outside the 64x48 image"),
    ((63, 0, 70, 48), "less than 2 pixels"),
    ((0, 0, float("nan"), 10), "finite"),
    (("left", 0, 10, 10), "four numbers"),
    ((0, 0, 10), "four numbers"),
])
def test_a_bad_box_is_refused_and_nothing_is_written(tianchi: Path, box: tuple, message: str) -> None:
    before = _tree(tianchi)
    with pytest.raises(CatalogueError, match=message) as e:
        add_product(tianchi, "230", "n", "长裤", [("good.png", _image_bytes()), ("boxed.png", _image_bytes())],
                    [None, box])
    assert "boxed.png" in str(e.value)
    assert _tree(tianchi) == before
    assert not any(q.name.startswith(".livematch-add") for q in tianchi.iterdir())


def test_boxes_must_match_the_images_and_the_layout(tianchi: Path, folders: Path) -> None:
    before = _tree(tianchi)
    with pytest.raises(CatalogueError, match="one box"):
        add_product(tianchi, "240", "n", "", [("a.png", _image_bytes())], [None, None])
    assert _tree(tianchi) == before
    before = _tree(folders)
    with pytest.raises(CatalogueError, match="keeps no product boxes"):
        add_product(folders, "blue", "n", "", [("a.png", _image_bytes())], [(1, 1, 20, 20)])
    assert _tree(folders) == before
    add_product(folders, "blue", "n", "", [("a.png", _image_bytes())], [None])  # no box: accepted


def test_checked_box_clips_and_rounds() -> None:
    assert checked_box((-3, 2.04, 70, 30.96), (64, 48)) == (0.0, 2.0, 64.0, 31.0)


def test_the_proposed_box_is_the_best_detection_and_none_for_the_whole_image() -> None:
    det = Detections(np.array([[1, 2, 30, 40], [5, 5, 60, 45]], np.float32), np.array([0.5, 0.9], np.float32),
                     ("person", "person"))
    assert proposed_box(det) == (5.0, 5.0, 60.0, 45.0)
    assert proposed_box(Detections.whole(64, 48)) is None
    assert proposed_box(Detections.empty()) is None


def test_images_are_reencoded_as_jpeg(tianchi: Path) -> None:
    out = add_product(tianchi, "201", "x", "", [("x.png", _image_bytes("PNG"))])
    with Image.open(out / "0.jpg") as im:
        assert im.format == "JPEG"
    assert not (tianchi / "image_annotation" / "201").exists()  # no category: regions come from the detector


def test_adds_a_folder_product(folders: Path) -> None:
    add_product(folders, "green-skirt", "Green skirt", "短裙", [("g.png", _image_bytes(colour=(0, 200, 0)))])
    cat = load_catalogue(folders)
    assert cat.products["green-skirt"].name == "Green skirt"
    assert cat.products["green-skirt"].category == "短裙"
    assert cat.products["red-shirt"].name == "red-shirt"


@pytest.mark.parametrize("bad", ["", "  ", "../evil", "a/b", "a\\b", "..", ".hidden", "x" * 65, "a b", "né"])
def test_refuses_unsafe_ids(tianchi: Path, bad: str) -> None:
    before = _tree(tianchi)
    with pytest.raises(CatalogueError):
        add_product(tianchi, bad, "n", "", [("a.png", _image_bytes())])
    assert _tree(tianchi) == before


def test_validate_product_id_strips_and_accepts_plain_ids() -> None:
    assert validate_product_id(" 9000-01_a.b ") == "9000-01_a.b"


@pytest.mark.parametrize("payload", [b"", b"not an image at all", _image_bytes("PNG")[:40]])
def test_one_bad_image_writes_nothing(tianchi: Path, payload: bytes) -> None:
    before = _tree(tianchi)
    with pytest.raises(ImageError) as e:
        add_product(tianchi, "300", "n", "长裤", [("good.png", _image_bytes()), ("bad.jpg", payload)])
    assert "bad.jpg" in str(e.value)
    assert _tree(tianchi) == before
    assert not any(q.name.startswith(".livematch-add") for q in tianchi.iterdir())


def test_refuses_no_images_and_existing_ids(tianchi: Path) -> None:
    with pytest.raises(ImageError):
        add_product(tianchi, "300", "n", "", [])
    with pytest.raises(CatalogueError, match="already exists"):
        add_product(tianchi, "100", "n", "", [("a.png", _image_bytes())])


def test_unknown_category_is_refused_and_english_names_map_to_keys() -> None:
    assert normalise_category("Trousers") == "长裤"
    assert normalise_category("长裤") == "长裤"
    assert normalise_category("") == ""
    with pytest.raises(CatalogueError):
        normalise_category("spaceship")


def test_missing_catalogue_is_an_engine_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError):
        add_product(tmp_path / "nope", "1", "n", "", [("a.png", _image_bytes())])


def test_failure_while_committing_rolls_back(tianchi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tianchi / "products.json").write_text(json.dumps({"100": {"name": "Old name"}}), encoding="utf-8")
    before = _tree(tianchi)
    real_rename = os.rename

    def failing_rename(src, dst):  # the last step (the image folder) fails
        if Path(dst).parent.name == "image":
            raise OSError("disk full")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError):  # with a box, so that the annotations are renamed in first and must be undone
        add_product(tianchi, "400", "n", "长裤", [("a.png", _image_bytes())], [(2, 2, 40, 40)])
    monkeypatch.undo()
    assert _tree(tianchi) == before
    assert not (tianchi / "image_annotation" / "400").exists()


def test_demo_copy_keeps_demo_names_when_adding(demo_dir: Path, tmp_path: Path) -> None:
    copy = copy_catalogue(demo_dir, tmp_path / "user")
    names_before = {pid: p.name for pid, p in load_catalogue(copy).products.items()}
    add_product(copy, "999999", "Studio test dress", "短袖连衣裙", [("d.png", _image_bytes())])
    cat = load_catalogue(copy)
    assert {pid: cat.products[pid].name for pid in names_before} == names_before
    assert cat.products["999999"].name == "Studio test dress"
    assert len(cat.clips) == len(load_catalogue(demo_dir).clips)
    assert "999999" not in load_catalogue(demo_dir).products  # the original is untouched


def test_copy_refuses_to_overwrite(demo_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(CatalogueError):
        copy_catalogue(demo_dir, tmp_path / "taken")
