"""The Match page's product timeline: the toggle, the run refreshing until the clip's end, the chart with one band
per segment, the table, a segment's frames, the downloads; Stop keeps the segments so far."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apptest_support import assert_clean, open_app, page_text, plotly_figures, use_catalogue

from engine.io.catalogue import load_catalogue


@pytest.fixture()
def sample(monkeypatch: pytest.MonkeyPatch, demo_dir: Path) -> str:
    use_catalogue(monkeypatch, demo_dir)
    monkeypatch.setenv("LIVEMATCH_STREAM_EVERY", "0.5")  # the small demo's clips last 2 s: 4 frames
    return sorted(v for v, c in load_catalogue(demo_dir).clips.items() if c.path)[0]


def _toggle(at):
    return next(t for t in at.toggle if str(t.key).startswith("match.timeline_on"))


def _open(vid: str):
    at = open_app()
    at.radio(key="match.mode").set_value("Sample clip from the catalogue").run()
    at.selectbox(key="match.sample").set_value(vid).run()
    assert_clean(at)
    return at


def test_a_short_clip_is_matched_unless_the_timeline_is_asked_for(sample):
    at = _open(sample)
    assert _toggle(at).value is False  # 2 s: not longer than a minute
    assert "Votes per frame" in [s.value for s in at.subheader]
    _toggle(at).set_value(True).run()
    assert_clean(at)
    for _ in range(8):  # each run is one refresh of the timeline view
        if "product segment" in page_text(at) or "no catalogue product" in page_text(at):
            break
        at.run()
        assert_clean(at)
    text = page_text(at)
    assert "1 product segment(s), 1 product(s) (4 frames" in text, text
    bands = [t for fig in plotly_figures(at) for t in fig["data"] if t.get("type") == "bar"]
    assert len(bands) == 1 and bands[0]["legendgroup"] == sample
    table = at.dataframe[0].value
    assert list(table["id"]) == [sample] and table["frame"][0].startswith("data:image/jpeg;base64,")
    assert at.selectbox(key="match.timeline_segment").value == 0
    assert sum(1 for img in at.image if any(c.startswith("0:00:0") for c in img.captions)) == 4
    assert at.button(key="match.timeline_stop").disabled
    downloads = [d for d in at.get("download_button")]
    assert len(downloads) == 2


def test_stop_keeps_the_segments_so_far(sample, monkeypatch):
    monkeypatch.setattr("ui.timeline.STEP_BUDGET_S", 0.0)  # one step (4 frames... at most) per refresh
    monkeypatch.setenv("LIVEMATCH_STREAM_EVERY", "0.25")  # 8 frames: two steps
    at = _open(sample)
    _toggle(at).set_value(True).run()
    assert_clean(at)
    assert not at.button(key="match.timeline_stop").disabled
    at.button(key="match.timeline_stop").click().run()
    assert_clean(at)
    text = page_text(at)
    assert "stopped before the end" in text and "4 frames" in text
    assert not at.button(key="match.timeline_restart").disabled
