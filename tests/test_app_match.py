"""The Match page, driven through streamlit.testing: upload, sample clips, bad uploads, the upload limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit import config
from support.apptest import FRAMES, assert_clean, open_app, page_text, plotly_figures, use_catalogue

from engine.io.catalogue import load_catalogue


@pytest.fixture()
def app_env(monkeypatch: pytest.MonkeyPatch, demo_dir: Path) -> Path:
    use_catalogue(monkeypatch, demo_dir)
    return demo_dir


def _clip(demo_dir: Path, video_id: str) -> bytes:
    return (demo_dir / "video" / f"{video_id}.mp4").read_bytes()


def test_empty_page_explains_the_steps_and_states_the_upload_limit(app_env: Path) -> None:
    at = open_app()
    text = page_text(at)
    assert "Match a clip" in text
    uploader = at.file_uploader(key="match.upload")
    assert "200 MB" in uploader.label
    assert set(uploader.allowed_type) >= {".mp4", ".mov", ".avi", ".mkv", ".webm"} or set(uploader.allowed_type) >= {
        "mp4", "mov", "avi", "mkv", "webm"}
    assert "Evidence is weighed" in text and "ranked by this evidence, then by their votes" in text
    assert not at.image


def test_upload_shows_frames_votes_and_the_right_product(app_env: Path) -> None:
    cat = load_catalogue(app_env)
    truth = "900001"
    name = cat.products[truth].name
    at = open_app()
    at.file_uploader(key="match.upload").set_value(("presenter clip.mp4", _clip(app_env, truth), "video/mp4")).run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert at.success and name in at.success[0].value and "presenter clip.mp4" in at.success[0].value
    # the sampled frames, each with the product it voted for on a fixed-height line under it
    captions = [str(h.value) for h in at.get("html") if "voted for <b>" in str(h.value)]
    assert len(captions) == FRAMES
    assert sum(name in c for c in captions) >= 2
    # the votes chart: one heatmap row per leading product, the truth on top
    figures = plotly_figures(at)
    assert len(figures) == 1
    heatmap = figures[0]["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["y"][0].endswith(truth)
    assert any("★" in t for t in heatmap["text"][0])
    # the top-K cards and the JSON download
    assert f"Best match</span><div class=\"lm-name\" title=\"{name}\"" in page_text(at)
    assert at.get("download_button")
    # the uploaded clip itself, playable on the page
    assert len(at.get("video")) == 1 and any(e.label == "Play presenter clip.mp4" for e in at.expander)
    # the verdict says whose votes it counts, and the cards show the ranking key
    assert f"of {FRAMES} sampled frames voted for it (evidence" in at.success[0].value
    assert "<span>evidence</span>" in page_text(at)


def test_sample_clip_is_matched_and_cached(app_env: Path) -> None:
    cat = load_catalogue(app_env)
    at = open_app()
    at.radio(key="match.mode").set_value("Sample clip from the catalogue").run()
    picker = at.selectbox(key="match.sample")
    assert set(picker.options) == {f"{v} · shows {cat.products[v].name}" for v in cat.clips}
    picker.set_value("900002").run()
    assert_clean(at)
    banner = [e.value for e in (*at.success, *at.warning)]  # green, or amber "most likely" (3 frames are few)
    assert len(banner) == 1 and cat.products["900002"].name in banner[0].split(" in ")[0]
    at.run()  # a rerun is served from the cache: same result, no progress bar left behind
    assert_clean(at)
    assert [e.value for e in (*at.success, *at.warning)] == banner
    assert not [p for p in at.get("progress") if "Embedding" in str(p.proto.text)]


@pytest.mark.parametrize(
    "name, payload",
    [
        ("notes.mp4", b"this is not a video at all" * 50),
        ("empty.mp4", b""),
        ("cut.mp4", None),  # the first kilobytes of a real clip
    ],
)
def test_bad_upload_shows_an_error_and_nothing_else(app_env: Path, name: str, payload: bytes | None) -> None:
    data = payload if payload is not None else _clip(app_env, "900003")[:4000]
    at = open_app()
    at.file_uploader(key="match.upload").set_value((name, data, "video/mp4")).run()
    assert_clean(at)
    assert at.error, "a bad upload must show an error"
    assert name in at.error[0].value
    assert not at.success and not at.image and not plotly_figures(at)


def test_upload_over_the_limit_is_refused(app_env: Path) -> None:
    previous = st.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 1)  # not scriptable through st.set_option
    try:
        at = open_app()
        at.file_uploader(key="match.upload").set_value(("big.mp4", b"\0" * (2 * 1024 * 1024), "video/mp4")).run()
        assert_clean(at)
        assert at.error and "1 MB upload limit" in at.error[0].value
        assert not at.success
    finally:
        config.set_option("server.maxUploadSize", previous)


def test_missing_catalogue_folder_is_a_friendly_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_catalogue(monkeypatch, tmp_path / "does-not-exist")
    at = open_app()
    assert_clean(at)
    assert any("catalogue folder not found" in e.value for e in at.error)


def test_a_model_without_weights_is_a_friendly_error(app_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("LIVEMATCH_SSD300_WEIGHTS", str(tmp_path / "missing.pth"))
    at = open_app()
    at.sidebar.selectbox(key="cfg.detector").set_value("ssd300-vgg16").run()
    at.file_uploader(key="match.upload").set_value(("clip.mp4", _clip(app_env, "900001"), "video/mp4")).run()
    assert_clean(at)
    assert at.error and "SSD300-VGG16 weights not found" in at.error[0].value
    assert not at.success


@pytest.mark.slow
def test_upload_with_a_trained_garment_head(app_env: Path, monkeypatch: pytest.MonkeyPatch, engine,
                                            tmp_path: Path) -> None:
    """The learned mode end to end in the app: garment boxes with categories, and the JSON download."""
    from engine.training.garments import GarmentConfig, train_garment_head

    _, info = train_garment_head(engine, load_catalogue(app_env), tmp_path / "garment.pt", GarmentConfig(epochs=150))
    monkeypatch.setenv("LIVEMATCH_GARMENT_MODEL", info["checkpoint"])
    truth = "900002"
    at = open_app()
    at.file_uploader(key="match.upload").set_value(("clip.mp4", _clip(app_env, truth), "video/mp4")).run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["livematch.settings"].models.garment_model == info["checkpoint"]
    assert at.success and f"({truth})" in at.success[0].value
    assert at.get("download_button")
