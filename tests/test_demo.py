"""The built-in demo dataset: layout, determinism, idempotency and distinct products. Offline and fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import engine.io.demo.dataset as dataset_module
from engine.io.demo import DEMO_CATEGORIES, default_demo_dir, generate_demo

SMALL: dict[str, Any] = {"n_products": 4, "n_clips": 2, "frames_per_clip": 21, "frame_size": (96, 160)}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _files(root: Path, *parts: str) -> dict[str, bytes]:
    """Every file under ``root/<part>`` for each part, keyed by relative path, as bytes."""
    paths = (p for part in parts for p in sorted((root / part).rglob("*")) if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("demo") / "demo", seed=0, **SMALL)


def test_demo_json_describes_products_and_clips(demo: Path) -> None:
    meta = _load(demo / "demo.json")
    assert meta["version"] == 3 and meta["seed"] == 0
    assert list(meta["products"]) == ["900001", "900002", "900003", "900004"]
    for product in meta["products"].values():
        assert product["category"] in DEMO_CATEGORIES
        assert product["name"] and product["name"].isascii()
    assert len({p["name"] for p in meta["products"].values()}) == 4
    assert meta["clips"] == {"900001": "900001", "900002": "900002"}
    clip_categories = [meta["products"][item]["category"] for item in meta["clips"].values()]
    assert len(set(clip_categories)) == len(clip_categories)


def _check_annotation(ann: dict[str, Any], item_id: str, width: int, height: int) -> None:
    assert set(ann) == {"box", "label", "instance_id", "viewpoint", "display"}
    x0, y0, x1, y1 = ann["box"]
    assert all(isinstance(v, int) for v in ann["box"])
    assert 0 <= x0 < x1 < width and 0 <= y0 < y1 < height
    assert ann["label"] in DEMO_CATEGORIES
    assert ann["instance_id"] == int(item_id) * 100 + 1
    assert ann["viewpoint"] == 0 and ann["display"] == 1


def test_shop_images_follow_the_tianchi_layout(demo: Path) -> None:
    meta = _load(demo / "demo.json")
    for item_id, product in meta["products"].items():
        for k in range(3):
            img = cv2.imread(str(demo / "image" / item_id / f"{k}.jpg"))
            assert img is not None and img.shape == (320, 320, 3)
            ann = _load(demo / "image_annotation" / item_id / f"{k}.json")
            assert ann["item_id"] == item_id and ann["img_name"] == f"{k}.jpg"
            assert len(ann["annotations"]) == 1
            _check_annotation(ann["annotations"][0], item_id, 320, 320)
            assert ann["annotations"][0]["label"] == product["category"]
            x0, y0, x1, y1 = ann["annotations"][0]["box"]
            assert (x1 - x0) * (y1 - y0) > 0.15 * 320 * 320  # the product fills a fair part of the photo


def test_clips_follow_the_tianchi_layout(demo: Path) -> None:
    meta = _load(demo / "demo.json")
    width, height = SMALL["frame_size"]
    assert sorted(p.name for p in (demo / "video").iterdir()) == ["900001.mp4", "900002.mp4"]
    for video_id, item_id in meta["clips"].items():
        cap = cv2.VideoCapture(str(demo / "video" / f"{video_id}.mp4"))
        assert cap.isOpened()
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(20.0)
        frames = []
        while (read := cap.read())[0]:
            frames.append(read[1])
        cap.release()
        assert len(frames) == SMALL["frames_per_clip"]
        assert frames[0].shape == (height, width, 3)
        ann = _load(demo / "video_annotation" / f"{video_id}.json")
        assert ann["video_id"] == video_id == item_id
        assert [f["frame_index"] for f in ann["frames"]] == [0, 10, 20]
        for frame in ann["frames"]:
            assert len(frame["annotations"]) == 1
            _check_annotation(frame["annotations"][0], item_id, width, height)
            assert frame["annotations"][0]["label"] == meta["products"][item_id]["category"]
            x0, y0, x1, y1 = frame["annotations"][0]["box"]
            assert 0.08 < (x1 - x0) * (y1 - y0) / (width * height) < 0.6  # worn: a top, a skirt, a dress


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    params: dict[str, Any] = {"n_products": 3, "n_clips": 1, "frames_per_clip": 11, "frame_size": (96, 160)}
    a = generate_demo(tmp_path / "a", seed=7, **params)
    b = generate_demo(tmp_path / "b", seed=7, **params)
    c = generate_demo(tmp_path / "c", seed=8, **params)
    parts = ("image", "image_annotation", "video_annotation")
    files_a = _files(a, *parts)
    assert files_a == _files(b, *parts)
    assert (a / "demo.json").read_bytes() == (b / "demo.json").read_bytes()
    files_c = _files(c, *parts)
    assert files_a.keys() == files_c.keys()
    shop = [k for k in files_a if k.endswith(".jpg")]
    assert all(files_a[k] != files_c[k] for k in shop)


def test_generation_is_idempotent_and_replaces_an_older_demo(tmp_path: Path) -> None:
    params: dict[str, Any] = {"n_products": 2, "n_clips": 1, "frames_per_clip": 5, "frame_size": (96, 160)}
    out = generate_demo(tmp_path / "demo", **params)
    marker = out / "marker.txt"
    marker.write_text("left alone")
    stamp = (out / "demo.json").stat().st_mtime_ns
    assert generate_demo(out, **params) == out
    assert marker.exists() and (out / "demo.json").stat().st_mtime_ns == stamp
    generate_demo(out, **{**params, "n_products": 3})  # other parameters: a fresh demo replaces it
    assert not marker.exists()
    assert len(_load(out / "demo.json")["products"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary folders left behind


def test_a_failed_generation_keeps_the_old_demo_and_leaves_no_debris(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    params: dict[str, Any] = {"n_products": 2, "n_clips": 1, "frames_per_clip": 5, "frame_size": (96, 160)}
    out = generate_demo(tmp_path / "demo", **params)
    before = _files(out, ".")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(dataset_module, "_write_clip", broken)  # where _build looks it up
    with pytest.raises(RuntimeError):
        generate_demo(out, **{**params, "seed": 1})
    assert _files(out, ".") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_refuses_to_overwrite_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError):
        generate_demo(tmp_path / "mine", n_products=1, n_clips=0)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("bad", [
    {"n_products": 0}, {"n_products": 2, "n_clips": 3}, {"frames_per_clip": 0}, {"frame_size": (97, 160)},
    {"seed": -1},
])
def test_rejects_bad_parameters(tmp_path: Path, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate_demo(tmp_path / "demo", **bad)
    assert not (tmp_path / "demo").exists()


def _thumbnail(img: np.ndarray, box: list[int]) -> np.ndarray:
    """A 12x12 colour thumbnail of the boxed product, divided by its mean so brightness changes cancel."""
    x0, y0, x1, y1 = box
    t = cv2.resize(img[y0:y1, x0:x1], (12, 12), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    return t / t.mean()


def test_products_look_distinct(tmp_path: Path) -> None:
    out = generate_demo(tmp_path / "demo", n_products=8, n_clips=0)
    feats, labels = [], []
    for item_id in _load(out / "demo.json")["products"]:
        for k in range(3):
            img = cv2.imread(str(out / "image" / item_id / f"{k}.jpg"))
            box = _load(out / "image_annotation" / item_id / f"{k}.json")["annotations"][0]["box"]
            feats.append(_thumbnail(img, box))
            labels.append(item_id)
    f, ids = np.array(feats), np.array(labels)
    dist = np.abs(f[:, None] - f[None]).sum(axis=-1)
    same, self_ = ids[:, None] == ids[None], np.eye(len(ids), dtype=bool)
    assert dist[~same].mean() > 2.0 * dist[same & ~self_].mean()
    np.fill_diagonal(dist, np.inf)
    assert (ids[dist.argmin(axis=1)] == ids).all()  # every photo's nearest other photo shows the same product


def test_default_demo_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIVEMATCH_DEMO_DIR", str(tmp_path / "x"))
    assert default_demo_dir() == tmp_path / "x"
    monkeypatch.delenv("LIVEMATCH_DEMO_DIR")
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path / "home"))
    assert default_demo_dir() == tmp_path / "home" / "demo"
    monkeypatch.delenv("LIVEMATCH_HOME")
    assert default_demo_dir() == Path.home() / ".cache" / "livematch" / "demo"


def test_the_builtin_demo_has_one_clip_of_a_product_not_in_the_catalogue(tmp_path: Path) -> None:
    out = generate_demo(tmp_path / "demo", n_products=3, n_clips=1, n_absent=1, frames_per_clip=11,
                        frame_size=(96, 160))
    meta = _load(out / "demo.json")
    assert list(meta["clips"]) == ["900001", "900004"] and list(meta["absent"]) == ["900004"]
    assert (out / "video" / "900004.mp4").is_file() and not (out / "image" / "900004").exists()
    from engine.io.catalogue import load_catalogue

    catalogue = load_catalogue(out)
    assert "900004" not in catalogue.products and catalogue.clips["900004"].truth is None
    assert catalogue.clips["900001"].truth == "900001"


def test_the_first_eight_products_differ_in_colour_and_pattern() -> None:
    from engine.io.demo.sprites import plan_products

    products = plan_products(9, 0)
    assert len({p.pattern for p in products[:8]}) == 8 and len({p.colour for p in products}) == 9


def test_the_presenter_is_found_by_the_person_detector(tmp_path: Path) -> None:
    """The pipeline starts with a COCO person detector: the demo's presenter must be found, not the whole frame."""
    from engine.io.video import sample_frames
    from engine.models.detectors import OpenCVSSD

    out = generate_demo(tmp_path / "demo", n_products=4, n_clips=4, frames_per_clip=40)
    detector, found, total = OpenCVSSD(), 0, 0
    for clip in sorted((out / "video").glob("*.mp4")):
        for frame in sample_frames(clip, 5):
            boxes = detector.detect([frame.image], 0.4)[0]
            found += len(boxes) > 0
            total += 1
    assert found >= 0.6 * total, f"a person found in {found} of {total} frames"


@pytest.mark.slow
def test_the_builtin_demo_is_right_on_every_clip_of_a_catalogue_product(tmp_path: Path) -> None:
    """Issue 32: the demo's first clip came out confidently wrong ("Purple checked skirt" as a long-sleeve top,
    10 of 10 frames). Every clip of a catalogue product must be right (confident or uncertain), and the clip of the
    absent product is counted apart, not as a miss."""
    from engine.config import Settings
    from engine.eval.evaluate import evaluate, format_table
    from engine.io.demo import BUILTIN

    out = generate_demo(tmp_path / "demo", **BUILTIN)
    report = evaluate(str(out), Settings.from_env(index_dir=str(tmp_path / "index")))
    present = [o for o in report.clips if o.truth is not None]
    assert len(present) == 4 and all(o.truth_rank == 1 for o in present), format_table(report)
    assert [o.video_id for o in report.clips if o.truth is None] == ["900009"]
    assert report.metrics.clips == 4 and report.metrics.top1 == 1.0
    assert "absent-product clips 1 (900009)" in format_table(report)
