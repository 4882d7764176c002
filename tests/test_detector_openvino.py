"""The SSD on OpenVINO (ssd-mobilenet-v2-coco-openvino) finds what the SSD on OpenCV DNN finds, with the same boxes;
its converted IR is kept on disk and a damaged one is converted again, never trusted."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")

from engine.errors import ModelError  # noqa: E402
from engine.eval.detection import box_agreement  # noqa: E402
from engine.io.video import sample_frames  # noqa: E402
from engine.models import DETECTORS  # noqa: E402
from engine.models import openvino_ir  # noqa: E402
from engine.models import openvino_rt as ovrt  # noqa: E402
from engine.models.detectors import (COCO_TF, PRODUCT_CLASSES, OpenCVSSD, OpenVinoSSD,  # noqa: E402
                                     detect_side_by_side)
from tests.conftest import SHARED  # noqa: E402

NAME = "ssd-mobilenet-v2-coco-openvino"
THRESHOLD = 0.4  # Settings().detection.det_threshold
# Measured on the 70 sampled frames of the 7 watchlive-dev clips (scripts/compare_detectors.py): every box matched,
# median IoU 1.0000, lowest 0.9991, per frame and side by side (docs/detector-openvino.md).
LOWEST_IOU = 0.99


ALL_CLASSES = tuple(COCO_TF.values()) + tuple(f"class {i}" for i in range(1, 91))  # every label either may give


@pytest.fixture(scope="module")
def frames(demo_dir) -> list[np.ndarray]:
    """3 frames of each of the small demo's 3 clips (270x480, portrait): a drawn presenter holding up a product.
    Neither detector sees a person in them (not even at 0.1); at the graph's floor, 0.3, both find the same few boxes
    of another class (COCO 28), and the test compares every class."""
    return [f.image for clip in sorted((demo_dir / "video").glob("*.mp4")) for f in sample_frames(clip, 3)]


@pytest.fixture(scope="module")
def detectors(frames) -> tuple[OpenCVSSD, OpenVinoSSD]:
    ov = OpenVinoSSD(classes=ALL_CLASSES)
    ov.prepare(len(frames))  # one compiled shape (9 frames): every smaller batch runs padded in it (side by side: 1)
    return OpenCVSSD(classes=ALL_CLASSES), ov


def test_the_registry_and_the_command_line_know_the_name():
    import argparse

    from engine.cli.common import add_settings_options

    assert NAME in DETECTORS and DETECTORS[NAME] is OpenVinoSSD
    p = argparse.ArgumentParser()
    add_settings_options(p)
    assert NAME in "".join(p.format_help().split())  # argparse wraps the help at its hyphens
    assert p.parse_args(["--detector", NAME]).detector == NAME
    assert OpenVinoSSD.runtime == "OpenVINO f32"


def test_its_boxes_are_those_of_opencv(frames, detectors):
    cv, ov = detectors
    threshold = ov.min_threshold
    a, b = cv.detect(frames, threshold), ov.detect(frames, threshold)
    agree = box_agreement(a, b)
    print(agree.line())
    assert agree.boxes_a == agree.boxes_b > 0
    assert agree.unmatched_a == agree.unmatched_b == 0
    assert agree.min_iou >= LOWEST_IOU
    for da, db in zip(a, b):
        assert sorted(da.labels) == sorted(db.labels)
        np.testing.assert_allclose(np.sort(da.scores), np.sort(db.scores), atol=0.01)
    assert ov.cache_events in (["compiled"], ["imported"])  # one shape for every batch
    assert ov.detect([], threshold) == []


def test_a_threshold_below_the_graphs_floor_is_refused(detectors, frames):
    _, ov = detectors
    assert 0.29 < ov.min_threshold < 0.31  # the graph's own score_threshold
    ov.detect(frames[:6], 0.3)  # the floor itself is allowed
    with pytest.raises(ModelError, match="at least"):
        ov.detect(frames[:6], 0.2)


def test_it_is_safe_to_share_between_threads(frames, detectors):
    from concurrent.futures import ThreadPoolExecutor

    _, ov = detectors
    alone = ov.detect(frames[:6], 0.3)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda _: ov.detect(frames[:6], 0.3), range(4)))
    for run in together:
        for x, y in zip(alone, run):
            np.testing.assert_array_equal(x.boxes, y.boxes)


@pytest.mark.shared
def test_it_finds_the_person_in_real_frames_with_opencvs_boxes(detectors):
    """The sample's 2 real clips (../shared): a person in each frame, the same boxes as OpenCV's, per frame and with
    the frames side by side in pairs."""
    frames = [f.image for clip in sorted((SHARED / "video").glob("*.mp4")) for f in sample_frames(clip, 4)]
    cv, ov = OpenCVSSD(), detectors[1]
    person = lambda found: [d[np.array([label == "person" for label in d.labels], bool)] for d in found]  # noqa: E731
    for run in (lambda d, f: d.detect(f, THRESHOLD), lambda d, f: detect_side_by_side(d, f, THRESHOLD)):
        a, b = run(cv, frames), person(run(ov, frames))
        assert all(len(d) >= 1 and set(d.labels) == {"person"} for d in b)
        agree = box_agreement(a, b)
        print(agree.line())
        assert agree.unmatched_a == agree.unmatched_b == 0 and agree.min_iou >= LOWEST_IOU


def test_a_second_build_reads_the_kept_ir(detectors):
    from engine.models import build_detector

    again = build_detector(NAME)
    assert again.ir_event == "read" and again.classes == PRODUCT_CLASSES


# ---------------------------------------------------------------------- the IR cache, on a model of a few operations
def _tiny_source(path) -> None:
    """A small model file for OpenVINO to read: y = 2x + 1 over (N, 4)."""
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter(ov.PartialShape([-1, 4]), np.float32, name="x")
    y = ops.add(ops.multiply(x, np.full((1, 4), 2.0, np.float32)), np.ones((1, 4), np.float32))
    ov.save_model(ov.Model([y], [x], "tiny"), str(path), compress_to_fp16=False)


def _y(model) -> np.ndarray:
    compiled = ovrt.shared_core().compile_model(model, "CPU")
    return compiled({0: np.arange(8, dtype=np.float32).reshape(2, 4)})[0]


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(openvino_ir, "ir_cache_dir", lambda: tmp_path / "openvino-ir")
    src = tmp_path / "src" / "tiny.xml"
    src.parent.mkdir()
    _tiny_source(src)
    return src


def _damage(folder, how: str) -> None:
    target = folder / ("manifest.json" if how == "manifest" else "model.xml" if how == "xml" else "model.bin")
    if how == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif how == "truncate":
        target.write_bytes(target.read_bytes()[:-4])
    elif how == "manifest":
        target.write_text("{not json")
    elif how == "xml":
        target.write_text(target.read_text().replace("tiny", "tinz"))
    elif how == "missing":
        target.unlink()


def test_the_ir_is_converted_once_then_read(tiny):
    first = openvino_ir.converted_ir(tiny, "tiny")
    second = openvino_ir.converted_ir(tiny, "tiny")
    assert (first.event, second.event) == ("converted", "read")
    assert first.key == second.key
    np.testing.assert_array_equal(_y(second.model), np.arange(8, dtype=np.float32).reshape(2, 4) * 2 + 1)
    assert not [p for p in (openvino_ir.ir_cache_dir()).iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("how", ["flip", "truncate", "manifest", "xml", "missing"])
def test_a_damaged_ir_is_converted_again(tiny, how):
    first = openvino_ir.converted_ir(tiny, "tiny")
    (folder,) = openvino_ir.ir_cache_dir().iterdir()
    _damage(folder, how)
    again = openvino_ir.converted_ir(tiny, "tiny")
    assert again.event.startswith("discarded (") and again.event.endswith("converted")
    np.testing.assert_array_equal(_y(again.model), _y(first.model))
    assert openvino_ir.converted_ir(tiny, "tiny").event == "read"  # the rebuilt IR is kept


def test_another_source_replaces_the_kept_ir(tiny):
    openvino_ir.converted_ir(tiny, "tiny")
    old = {p.name for p in openvino_ir.ir_cache_dir().iterdir()}
    tiny.write_text(tiny.read_text().replace('name="tiny"', 'name="tiny2"'))  # another source: another digest
    assert openvino_ir.converted_ir(tiny, "tiny").event == "converted"
    new = {p.name for p in openvino_ir.ir_cache_dir().iterdir()}
    assert len(new) == 1 and new != old  # the stale IR is deleted
