"""The Match page's stream URL: Start reads a clip served over HTTP as a live stream, each rerun matches the next
frames and redraws the ranking, the page says when the stream ended or was stopped; bad URLs are one line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support.apptest import assert_clean, open_app, page_text, use_catalogue

from engine.io.catalogue import load_catalogue


@pytest.fixture()
def stream_env(monkeypatch: pytest.MonkeyPatch, demo_dir: Path, serve) -> tuple[str, str, str]:
    """(URL of a demo clip on a local HTTP server, its product id, its product name); a frame every 0.5 s."""
    use_catalogue(monkeypatch, demo_dir)
    monkeypatch.setenv("LIVEMATCH_STREAM_EVERY", "0.5")  # the small demo's clips last 2 s
    clip = next(c for c in load_catalogue(demo_dir).clips.values() if c.truth)
    url = f"{serve(Path(clip.path).parent)}/{Path(clip.path).name}"
    return url, clip.truth, load_catalogue(demo_dir).products[clip.truth].name


def _start(url: str):
    at = open_app()
    at.radio(key="match.mode").set_value("Stream URL").run()
    assert_clean(at)
    at.button(key="match.stream_start").click().run()  # nothing typed yet: a hint, nothing started
    assert len(at.error) == 1 and "Paste a stream address first" in at.error[0].value
    at.text_input(key="match.stream_url").set_value(url).run()
    at.button(key="match.stream_start").click().run()
    assert_clean(at)
    return at


def _frames_shown(at) -> int:
    """The frame cards on the page: each names its frame ("#6 · 3.0 s") in its meta block, under the image."""
    return sum('<div class="lm-meta"><div class="lm-line">#' in h.value for h in at.get("html"))


@pytest.mark.slow
def test_a_stream_is_matched_as_it_plays_until_it_ends(stream_env):
    url, truth, name = stream_env
    at = _start(url)
    assert not at.error, [e.value for e in at.error]
    seen = []
    for _ in range(6):  # each run is one refresh of the live view: 2 more frames
        text = page_text(at)
        seen.append(_frames_shown(at))
        if "The stream ended" in text:
            break
        assert "Live" in text and at.button(key="match.stream_stop").disabled is False
        at.run()
        assert_clean(at)
    text = page_text(at)
    assert "The stream ended after 4 frames" in text  # 2 s of clip, a frame every 0.5 s
    assert seen[0] >= 1 and max(seen) == 4  # the recent frames grow as the stream plays
    banner = (at.success or at.warning)[0].value
    assert name in banner and truth in banner
    assert at.button(key="match.stream_stop").disabled and not at.button(key="match.stream_start").disabled


@pytest.mark.slow
def test_stop_ends_the_live_view(stream_env):
    url, _, _ = stream_env
    at = _start(url)
    at.button(key="match.stream_stop").click().run()
    assert_clean(at)
    assert "Stopped after" in page_text(at)
    assert at.button(key="match.stream_stop").disabled
    frames = _frames_shown(at)
    at.run()  # no more refreshes: nothing new is matched
    assert _frames_shown(at) == frames


def test_a_dead_or_malformed_stream_url_is_one_line(stream_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/live.m3u8"
    at = _start(dead)
    assert len(at.error) == 1 and "cannot open the stream" in at.error[0].value
    assert "\n" not in at.error[0].value
    at.text_input(key="match.stream_url").set_value("not a url").run()
    at.button(key="match.stream_start").click().run()
    assert_clean(at)
    assert len(at.error) == 1 and "not a stream address" in at.error[0].value


def test_an_unexpected_failure_stops_the_stream_with_one_line(stream_env, monkeypatch):
    from engine.pipeline.live import LiveMatch

    def broken(self):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(LiveMatch, "step", broken)
    url, _, _ = stream_env
    at = _start(url)
    assert len(at.error) == 1 and "matching the stream failed" in at.error[0].value
    assert at.button(key="match.stream_stop").disabled  # stopped: no refresh fails again every second
    at.run()
    assert_clean(at)
    assert len(at.error) == 1


@pytest.mark.slow
def test_a_clip_from_a_server_without_byte_ranges_is_fetched_and_matched(monkeypatch, demo_dir: Path, serve):
    """Issue 20: `python -m http.server` serves no byte ranges; the clip is downloaded (within the upload limit)
    and matched; over the limit, the page says so in one line, as the command line does."""
    use_catalogue(monkeypatch, demo_dir)
    monkeypatch.setenv("LIVEMATCH_STREAM_EVERY", "0.5")
    clip = next(c for c in load_catalogue(demo_dir).clips.values() if c.truth)
    url = f"{serve(Path(clip.path).parent, ranges=False)}/{Path(clip.path).name}"
    at = _start(url)
    assert not at.error, [e.value for e in at.error]
    for _ in range(10):
        if "The stream ended" in page_text(at):
            break
        at.run()
        assert_clean(at)
    assert "The stream ended after 4 frames" in page_text(at)
    assert clip.truth in at.success[0].value or clip.truth in at.warning[0].value

    import streamlit as st

    real = st.get_option
    monkeypatch.setattr(st, "get_option", lambda name: 0.05 if name == "server.maxUploadSize" else real(name))
    at.button(key="match.stream_start").click().run()
    assert_clean(at)
    assert len(at.error) == 1 and "over the 0.05 MB download limit" in at.error[0].value


def test_the_stream_panel_says_why_a_stream_and_an_upload_can_disagree(stream_env):
    at = open_app()
    at.radio(key="match.mode").set_value("Stream URL").run()
    assert_clean(at)
    text = page_text(at)
    assert "one frame every 0.5 s (0 s, 0.5 s, 1 s, …)" in text and "the frames differ, the matching does not" in text
