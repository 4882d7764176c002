import numpy as np
import pytest

from engine.types import Detections


def test_detections_mask_and_empty():
    d = Detections(np.array([[0, 0, 10, 10], [5, 5, 20, 30]], np.float32), np.array([0.9, 0.2], np.float32),
                   ("person", "person"))
    kept = d[d.scores > 0.5]
    assert len(kept) == 1 and kept.labels == ("person",) and kept.boxes.tolist() == [[0, 0, 10, 10]]
    assert len(d[d.scores > 2]) == 0
    assert len(Detections.empty()) == 0
    assert d.areas.tolist() == [100.0, 375.0]


def test_detections_refuses_mismatched_lengths():
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4), np.float32), np.zeros(1, np.float32), ("a", "b"))


def test_from_opencv_ssd_scales_and_names():
    rows = np.array([[0, 1, 0.8, 0.1, 0.2, 0.5, 1.2], [0, 44, 0.7, 0, 0, 1, 1]], np.float32)
    d = Detections.from_opencv_ssd(rows, 200, 100, {1: "person"})
    assert d.labels == ("person", "class 44")
    np.testing.assert_allclose(d.boxes[0], [20, 20, 100, 100])  # y1 clipped to the image


def test_whole_frame_fallback():
    d = Detections.whole(640, 360)
    assert d.source == "whole-frame" and d.boxes.tolist() == [[0, 0, 640, 360]]


def test_settings_from_the_environment_parse_booleans(monkeypatch):
    from engine.config import Settings, Windows

    monkeypatch.setenv("LIVEMATCH_SIDE_BY_SIDE", "0")
    monkeypatch.setenv("LIVEMATCH_FRAMES", "6")
    monkeypatch.setenv("LIVEMATCH_WINDOWS", "Pooled")
    s = Settings.from_env()
    assert s.detection.side_by_side is False and s.detection.frames == 6 and s.search.windows == Windows.POOLED
    monkeypatch.setenv("LIVEMATCH_SIDE_BY_SIDE", "true")
    assert Settings.from_env().detection.side_by_side is True


def test_settings_are_grouped_and_round_trip() -> None:
    from engine.config import Settings, Windows

    s = Settings().with_(frames=4, windows="whole", index_backend="faiss")
    assert (s.detection.frames, s.search.windows, s.index.index_backend) == (4, Windows.WHOLE, "faiss")
    assert Settings.from_flat(s.flat()) == s
    with pytest.raises(KeyError):
        Settings().with_(no_such_setting=1)
