"""Corrections through the app: "this clip shows product X" on Match stores livestream examples and re-ranks; the
Catalogue page lists them and removes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.apptest import FRAMES, assert_clean, open_app, page_text, use_catalogue

from engine.config import Settings
from engine.io.catalogue import load_catalogue
from engine.io.files import file_digest
from engine.workspace import corrections_store


@pytest.fixture()
def app_env(monkeypatch: pytest.MonkeyPatch, demo_dir: Path, tmp_path: Path) -> Path:
    use_catalogue(monkeypatch, demo_dir)
    monkeypatch.setenv("LIVEMATCH_INDEX_DIR", str(tmp_path / "index"))  # corrections stay out of the shared index
    return demo_dir


def _store(at, key: str) -> None:
    """Press a correction control's button, then "Store" in the dialog it opens."""
    at.button(key=f"{key}.apply").click().run()
    assert_clean(at)
    assert at.button(key=f"{key}.confirm")  # the dialog asks first
    at.button(key=f"{key}.confirm").click().run()
    assert_clean(at)


@pytest.mark.slow
def test_correct_from_match_then_list_and_remove_on_the_catalogue_page(app_env: Path) -> None:
    cat = load_catalogue(app_env)
    truth = "900002"
    other = next(p for p in sorted(cat.products) if p != truth)
    sha = file_digest(app_env / "video" / f"{truth}.mp4")[:16]
    at = open_app()
    at.radio(key="match.mode").set_value("Sample clip from the catalogue").run()
    at.selectbox(key="match.sample").set_value(truth).run()
    assert_clean(at)
    # matched right before any correction: green, or amber "most likely" (the stricter rule; 3 frames are few)
    banner = (at.success or at.warning)[0].value
    assert cat.products[truth].name in banner and "Not in the catalogue" not in banner

    # a frame's own control stores that frame; the clip-level one stores every sampled frame
    prefix = f"match.correct.{sha}."
    frame_buttons = [b for b in at.button if b.key and b.key.startswith(prefix) and b.key.endswith(".open")]
    assert len(frame_buttons) == FRAMES
    frame = frame_buttons[0].key[len(prefix):].split(".")[0]
    store = corrections_store(Settings.from_env(), app_env)
    frame_buttons[0].click().run()  # the dialog: which product, then Store
    picker = at.selectbox(key=f"{prefix}{frame}.product")
    assert f"Frame #{frame} of {truth}.mp4: which product is shown?" == picker.label
    assert picker.value is None  # nothing chosen for the person
    at.button(key=f"{prefix}{frame}.confirm").click().run()  # Store without a product: nothing written
    assert store.records() == []
    at.button(key=f"{prefix}{frame}.open").click().run()
    at.button(key=f"{prefix}{frame}.cancel").click().run()
    assert store.records() == []
    at.button(key=f"{prefix}{frame}.open").click().run()
    at.selectbox(key=f"{prefix}{frame}.product").set_value(truth)
    at.button(key=f"{prefix}{frame}.confirm").click().run()
    assert_clean(at)
    assert any(f"1 frame of {truth}.mp4 (#{frame})" in str(s.value) for s in at.success)
    assert [(c.product_id, c.frame_index) for c in store.records()] == [(truth, int(frame))]
    at.button(key=f"{prefix}{frame}.undo").click().run()  # Undo, from the same place
    assert_clean(at)
    assert store.records() == []
    assert any("Undone: 1 livestream example removed" in str(i.value) for i in at.info)
    # the clip's control: named after the clip file, asks first, nothing written before the confirmation
    clip_picker = at.selectbox(key=f"{prefix}clip.product")
    assert clip_picker.label == f"The {FRAMES} sampled frames of {truth}.mp4: which product is shown?"
    at.button(key=f"{prefix}clip.apply").click().run()
    assert store.records() == [] and at.button(key=f"{prefix}clip.confirm")
    at.button(key=f"{prefix}clip.cancel").click().run()
    assert store.records() == []
    at.selectbox(key=f"{prefix}clip.product").set_value(other).run()
    _store(at, f"{prefix}clip")
    assert not at.error, [e.value for e in at.error]
    learned = [s.value for s in at.success if "Learned" in str(s.value)]
    assert learned and f"{FRAMES} frames" in learned[0] and other in learned[0]
    # re-ranked at once: the corrected product now leads the clip
    assert cat.products[other].name in at.success[0].value
    assert len(store.records()) == FRAMES and {c.product_id for c in store.records()} == {other}
    _store(at, f"{prefix}clip")  # the same frames again: nothing is added, and the page says so
    assert len(store.records()) == FRAMES
    assert any("Already stored" in str(i.value) and "nothing was added" in str(i.value) for i in at.info)

    at.switch_page("pages/catalogue.py").run()
    assert_clean(at)
    text = page_text(at)
    assert f"{truth}.mp4" in text and other in text
    removes = [b for b in at.button if b.key and b.key.startswith("corrections.remove.")]
    assert len(removes) == FRAMES
    removes[0].click().run()  # only asks: a dialog names the files, nothing is removed yet
    assert_clean(at)
    assert len(store.records()) == FRAMES and at.button(key="confirm.yes").label == "Remove"
    at.button(key="confirm.yes").click().run()
    assert_clean(at)
    assert any("Removed" in str(s.value) for s in at.success)
    assert len(store.records()) == FRAMES - 1
    assert not [b for b in at.button if b.key == "confirm.yes"]  # the dialog is closed
    for _ in range(FRAMES - 1):
        [b for b in at.button if b.key and b.key.startswith("corrections.remove.")][0].click().run()
        at.button(key="confirm.yes").click().run()
    assert_clean(at)
    assert store.records() == []
    assert "No livestream examples yet" in page_text(at)


def test_an_unknown_product_is_refused_with_a_message(app_env: Path) -> None:
    from ui.correcting import NOTICE_PREFIX, _apply
    from ui.matching import ClipSource

    import streamlit as st

    cat = load_catalogue(app_env)
    clip = ClipSource.from_file(app_env / "video" / "900002.mp4")
    _apply(Settings.from_env(), cat, clip, None, "no-such-product", "t")
    kind, message, _ = st.session_state[NOTICE_PREFIX + "t"]
    assert kind == "error" and "unknown product 'no-such-product'" in message
    _apply(Settings.from_env(), cat, str(app_env / "video" / "gone.mp4"), None, sorted(cat.products)[0], "t")
    kind, message, _ = st.session_state[NOTICE_PREFIX + "t"]
    assert kind == "error" and "gone.mp4: clip not found" in message


def test_an_unexpected_failure_while_storing_is_a_message_not_a_traceback(app_env: Path, monkeypatch) -> None:
    import streamlit as st

    from ui import correcting
    from ui.correcting import NOTICE_PREFIX, _apply
    from ui.matching import ClipSource

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(correcting, "correct_clip", full_disk)
    cat = load_catalogue(app_env)
    _apply(Settings.from_env(), cat, ClipSource.from_file(app_env / "video" / "900002.mp4"), None,
           sorted(cat.products)[0], "u")
    kind, message, _ = st.session_state[NOTICE_PREFIX + "u"]
    assert kind == "error" and "server log" in message and "No space" not in message


@pytest.mark.slow
def test_correct_from_inspect_stores_the_frames_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo_dir: Path,
                                                      engine) -> None:
    import time

    from engine.eval.evaluate import metrics, save_report
    from engine.types import ClipOutcome, EvalReport

    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path))  # its own index and reports
    use_catalogue(monkeypatch, demo_dir)
    result = engine.match(demo_dir / "video" / "900002.mp4")
    outcome = ClipOutcome("900002", "900004", result.rank_of("900004"), result.top.product_id, result)
    save_report(EvalReport(str(demo_dir), engine.settings.flat(), metrics([outcome]), (outcome,),
                           created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z")), tmp_path / "reports" / "r.json")
    at = open_app("inspect")
    assert at.selectbox(key="inspect.correct.900002.product").value == "900004"  # the report's truth by default
    _store(at, "inspect.correct.900002")
    assert any("Learned" in str(s.value) for s in at.success), page_text(at)
    records = corrections_store(Settings.from_env(), demo_dir).records()
    assert {c.product_id for c in records} == {"900004"}
    assert sorted(c.frame_index for c in records) == sorted(f.frame_index for f in result.frames)
