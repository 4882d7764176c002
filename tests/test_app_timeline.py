"""The Match page's product timeline: the toggle, the run refreshing until the clip's end, the chart with one band
per segment, the table, a segment's frames, the downloads; Stop keeps the segments so far."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.apptest import assert_clean, open_app, page_text, plotly_figures, use_catalogue

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


@pytest.mark.slow
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
    assert "1 product segment, 1 product (4 frames" in text, text
    bands = [t for fig in plotly_figures(at) for t in fig["data"] if t.get("type") == "bar"]
    assert len(bands) == 1 and bands[0]["legendgroup"] == sample
    table = at.dataframe[0].value
    assert list(table["id"]) == [sample] and table["frame"][0].startswith("data:image/jpeg;base64,")
    assert at.selectbox(key="match.timeline_segment").value == 0
    assert sum(1 for img in at.image if any(c.startswith("0:00:0") for c in img.captions)) == 4
    assert at.button(key="match.timeline_stop").disabled
    downloads = [d for d in at.get("download_button")]
    assert len(downloads) == 2


@pytest.mark.slow
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


def test_the_chart_has_a_band_per_segment_one_colour_per_product_and_the_table_a_row_each():
    from engine.pipeline.timeline import FrameEvidence, Timeline, segment
    from ui.timeline import segment_table, timeline_chart

    a, b, none = {"A": 0.6, "B": 0.3}, {"A": 0.3, "B": 0.6}, {"A": 0.05, "B": 0.04}
    rows = [a] * 3 + [b] * 3 + [none] * 3 + [a] * 3
    frames = tuple(FrameEvidence(i, 2.0 * i, r, max(r, key=r.get)) for i, r in enumerate(rows))
    t = Timeline("v.mp4", 2.0, 24.0, segment(frames, 24.0, 2.0, none_below=0.2), frames)
    fig = timeline_chart(t, {"A": "Coat", "B": "Skirt"}, total_s=60.0)
    bars = [tr for tr in fig.data if tr.type == "bar"]
    assert [tr.legendgroup for tr in bars] == ["A", "B", "", "A"]
    assert bars[0].marker.color == bars[3].marker.color != bars[1].marker.color
    assert [tr.showlegend for tr in bars] == [True, True, True, False]
    assert "Coat" in bars[0].hovertemplate and tuple(fig.layout.xaxis.range) == (0, 60.0)
    # issue 32: a time axis, its labels not under the legend
    assert fig.layout.xaxis.title.text == "time in the video (h:mm:ss)" and fig.layout.legend.y > 1
    assert list(fig.layout.xaxis.ticktext)[:3] == ["0:00:00", "0:00:10", "0:00:20"]
    table = segment_table(t, {"A": "Coat"}, {0: b"\xff\xd8jpeg", 7: b"\xff\xd8jpeg"}, {"A": None, "B": None})
    assert list(table["id"]) == ["A", "B", "-", "A"] and list(table["name"])[2] == "no product"
    assert table["frame"][0].startswith("data:image/jpeg;base64,") and table["frame"][2].startswith("data:")
    assert table["frame"].isna().tolist() == [False, True, False, True]  # segments 2 and 4 kept no thumbnail


def test_the_headline_counts_in_proper_english():
    """Issue 32: "1 product segment(s), 1 product(s)"."""
    from engine.pipeline.timeline import FrameEvidence, Timeline, segment
    from ui.timeline import headline

    a, b = {"A": 0.6, "B": 0.3}, {"A": 0.3, "B": 0.6}
    one = tuple(FrameEvidence(i, 2.0 * i, a, "A") for i in range(4))
    t = Timeline("v.mp4", 2.0, 8.0, segment(one, 8.0, 2.0, none_below=0.2), one)
    assert headline(t).startswith("1 product segment, 1 product (")
    two = tuple(FrameEvidence(i, 2.0 * i, r, max(r, key=r.get)) for i, r in enumerate([a] * 3 + [b] * 3))
    t = Timeline("v.mp4", 2.0, 12.0, segment(two, 12.0, 2.0, none_below=0.2), two)
    assert headline(t).startswith("2 product segments, 2 products (")
