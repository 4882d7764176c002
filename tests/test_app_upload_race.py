"""Replacing the uploaded clip: the result always follows the bytes now in the uploader (clip A, then B, then B
again), whatever file ids the uploader reports, and the previous clip's result is gone."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from support.apptest import assert_clean, open_app, page_text, use_catalogue

from engine.io.catalogue import load_catalogue
from ui.matching import upload_source

A, B = "900001", "900002"  # demo clips that show different products


@pytest.fixture()
def app_env(monkeypatch: pytest.MonkeyPatch, demo_dir: Path) -> Path:
    use_catalogue(monkeypatch, demo_dir)
    return demo_dir


def test_an_upload_digest_is_reused_only_for_the_very_same_bytes() -> None:
    memo: dict = {}
    a, b = b"clip A" * 100, b"clip B" * 100
    first = upload_source("a.mp4", a, memo, "k")
    assert first.sha256 == hashlib.sha256(a).hexdigest() and first.data is a
    kept = memo["k"]
    assert upload_source("a.mp4", a, memo, "k").sha256 == first.sha256 and memo["k"] is kept  # a rerun: not rehashed
    second = upload_source("a.mp4", b, memo, "k")  # other bytes, same name (and, in the app, maybe the same file id)
    assert second.sha256 == hashlib.sha256(b).hexdigest() and second.data is b
    again = upload_source("b.mp4", bytes(bytearray(b)), memo, "k")  # B re-uploaded: equal bytes, a new object
    assert again.sha256 == second.sha256 and memo["k"][0] is again.data


def _upload(at, upload: tuple[str, bytes] | None, monkeypatch: pytest.MonkeyPatch, file_id: str | None) -> None:
    """Put one file (name, bytes) in the Match page's uploader, or remove it (None), and rerun. ``file_id``: the id
    the uploader reports for the file (as when new bytes land on a file id the page has seen), else a fresh one."""
    uploader = at.file_uploader(key="match.upload")
    with monkeypatch.context() as m:
        if file_id is not None:
            m.setattr(uuid, "uuid4", lambda: uuid.UUID(file_id))
        uploader.set_value(None if upload is None else (upload[0], upload[1], "video/mp4"))
    at.run()


def _assert_shows(at, clip: str, data: bytes, product: str, gone: tuple[str, str]) -> None:
    """The page shows the match of ``clip`` (these bytes, this product) and nothing of the clip ``gone``."""
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert at.file_uploader(key="match.upload").value.name == clip
    digest = hashlib.sha256(data).hexdigest()
    assert at.session_state["match.upload_sha256"][1] == digest
    assert at.session_state["match.shown_sha256"] == digest
    # one verdict banner: green, or amber "Uncertain. Most likely ..." (the stricter rule; 3 frames are few)
    banners = [e.value for e in (*at.success, *at.warning)]
    assert len(banners) == 1, banners
    assert product in banners[0] and clip in banners[0] and "Not in the catalogue" not in banners[0]
    text = page_text(at)
    assert f"Best match</span><div class=\"lm-name\" title=\"{product}\"" in text
    gone_clip, gone_product = gone
    assert gone_clip not in text
    assert f"Best match</span><div class=\"lm-name\" title=\"{gone_product}\"" not in text


def _assert_empty(at) -> None:
    """No clip in the uploader: the steps are explained, no result of any clip is shown."""
    assert_clean(at)
    assert at.file_uploader(key="match.upload").value is None
    assert at.session_state["match.shown_sha256"] is None
    assert not at.success and not at.image and "Evidence is weighed" in page_text(at)


@pytest.mark.parametrize("scenario", ["new-file-ids", "reused-file-id", "removed-in-between"])
def test_clip_a_then_b_then_b_again_shows_b(app_env: Path, monkeypatch: pytest.MonkeyPatch, scenario: str) -> None:
    """A, B, B again: as AppTest uploads (a new file id each time), with every upload under one file id, and as a
    browser replaces the file of a single-file uploader (the old one is removed, then the new one uploaded)."""
    cat = load_catalogue(app_env)
    clip = {v: ((app_env / "video" / f"{v}.mp4").read_bytes(), cat.products[v].name) for v in (A, B)}
    file_id = str(uuid.UUID(int=0xA11CE)) if scenario == "reused-file-id" else None
    steps = [A, None, B, None, B] if scenario == "removed-in-between" else [A, B, B]
    at = open_app()
    for step in [*steps, "rerun"]:
        if step == "rerun":  # a plain rerun keeps the last clip
            at.run()
        else:
            _upload(at, None if step is None else (f"clip-{step}.mp4", bytes(clip[step][0])), monkeypatch, file_id)
        if step is None:
            _assert_empty(at)
            continue
        shown = B if step == "rerun" else step
        other = A if shown == B else B
        _assert_shows(at, f"clip-{shown}.mp4", clip[shown][0], clip[shown][1], (f"clip-{other}.mp4", clip[other][1]))
