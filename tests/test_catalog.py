import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.io.catalogue import load_catalogue
from engine.errors import CatalogueError


def _img(path: Path, colour=(0, 0, 255)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 30, 3), colour, np.uint8))


def test_tianchi_layout_of_the_demo(demo_dir):
    cat = load_catalogue(demo_dir)
    assert cat.layout == "tianchi" and len(cat.products) == 5
    p = cat.products["900001"]
    assert len(p.images) == 3 and all(r.instance_id != 0 for r in p.regions)
    assert p.name and p.category
    assert {c.truth for c in cat.clips.values()} == {"900001", "900002", "900003"}
    assert all(c.path and Path(c.path).is_file() for c in cat.clips.values())


def test_missing_and_malformed_files_are_reported_not_fatal(tmp_path):
    root = tmp_path / "ds"
    _img(root / "image" / "001" / "0.jpg")
    _img(root / "image" / "001" / "1.jpg")
    (root / "image" / "002").mkdir(parents=True)  # a product without images
    ann = root / "image_annotation" / "001"
    ann.mkdir(parents=True)
    (ann / "0.json").write_text("{broken")
    (ann / "1.json").write_text(json.dumps({"annotations": [{"box": [5, 5, 2, 2]}, {"label": "x"},
                                                           {"box": [1, 1, 20, 30], "instance_id": 7, "label": "短裙"}]}))
    (root / "video_annotation").mkdir()
    (root / "video_annotation" / "001.json").write_text(json.dumps({"frames": [{"frame_index": 0, "annotations": []}]}))
    cat = load_catalogue(root)
    assert list(cat.products) == ["001"]
    assert len(cat.products["001"].regions) == 1 and cat.products["001"].category == "短裙"
    text = "\n".join(cat.problems)
    assert "malformed JSON" in text and "no valid box" in text and "no images" in text and "missing" in text
    assert cat.clips["001"].path is None


def test_folder_per_product_layout(tmp_path):
    _img(tmp_path / "red" / "a.jpg", (0, 0, 255))
    _img(tmp_path / "blue" / "a.png", (255, 0, 0))
    (tmp_path / "blue" / "notes.txt").write_text("ignored")
    cat = load_catalogue(tmp_path)
    assert cat.layout == "folders" and sorted(cat.products) == ["blue", "red"]
    assert cat.products["blue"].images[0].endswith("a.png")


def test_symlink_leaving_the_catalogue_is_refused(tmp_path):
    outside = tmp_path / "outside.jpg"
    _img(outside)
    root = tmp_path / "cat"
    _img(root / "p1" / "ok.jpg")
    os.symlink(outside, root / "p1" / "escape.jpg")
    os.symlink(tmp_path, root / "p2")
    cat = load_catalogue(root)
    assert list(cat.products) == ["p1"] and len(cat.products["p1"].images) == 1
    assert any("outside the catalogue" in p for p in cat.problems)


def test_missing_or_empty_catalogue_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogueError, match="not found"):
        load_catalogue(tmp_path / "nope")
    with pytest.raises(CatalogueError, match="no product"):
        load_catalogue(tmp_path)
