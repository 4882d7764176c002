"""Property-based fuzzing of the readers: any input gives a result or a clear EngineError, nothing else.

Bounded (a fixed number of examples, derandomized) so it runs in CI on every push.
"""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.io.annotations import parse_annotations
from engine.io.catalogue import load_catalogue
from engine.errors import EngineError
from engine.io.images import read_rgb
from engine.io.video import sample_frames

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _valid_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def _valid_mp4(tmp_path) -> bytes:
    p = tmp_path / "seed.mp4"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32))
    for i in range(6):
        w.write(np.full((32, 32, 3), i * 30, np.uint8))
    w.release()
    return p.read_bytes()


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: float) -> bytes:
    b = bytearray(data[: max(1, int(len(data) * cut))])
    for pos, val in flips:
        b[pos % len(b)] = val
    return bytes(b)


mutations = st.tuples(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=20),
                      st.floats(0.05, 1.0))


@FUZZ
@given(m=mutations)
def test_image_reader_never_crashes(tmp_path, m):
    p = tmp_path / "fuzz.png"
    p.write_bytes(_mutate(_valid_png(), *m))
    try:
        arr = read_rgb(p)
    except EngineError:
        return
    assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8


@FUZZ
@given(m=mutations)
def test_video_reader_never_crashes(tmp_path, m):
    p = tmp_path / "fuzz.mp4"
    p.write_bytes(_mutate(_valid_mp4(tmp_path), *m))
    try:
        frames = sample_frames(p, 3)
    except EngineError:
        return
    assert 0 < len(frames) <= 3 and all(f.image.ndim == 3 for f in frames)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
annotation = st.fixed_dictionaries({}, optional={"box": json_values | st.lists(st.integers(-100, 5000), min_size=4,
                                                                                 max_size=4),
                                                 "label": json_values, "instance_id": json_values})


@pytest.mark.slow
@FUZZ
@given(items=st.one_of(json_values, st.lists(annotation, max_size=6)))
def test_annotation_parser_accepts_or_reports_anything(items):
    problems: list[str] = []
    regions = parse_annotations(items, "p", "x.jpg", problems, "fuzz.json")
    for r in regions:
        x0, y0, x1, y1 = r.box
        assert x1 > x0 and y1 > y0 and isinstance(r.instance_id, int)


@FUZZ
@given(doc=json_values)
def test_catalogue_import_survives_any_annotation_file(tmp_path, doc):
    root = tmp_path / "ds"
    (root / "image" / "1").mkdir(parents=True, exist_ok=True)
    (root / "image" / "1" / "0.png").write_bytes(_valid_png())
    (root / "image_annotation" / "1").mkdir(parents=True, exist_ok=True)
    (root / "image_annotation" / "1" / "0.json").write_text(json.dumps(doc))
    (root / "video_annotation").mkdir(exist_ok=True)
    (root / "video_annotation" / "1.json").write_text(json.dumps(doc))
    cat = load_catalogue(root)
    assert list(cat.products) == ["1"]


# ------------------------------------------------------------------------ issue 30: text, addresses, playlists
@FUZZ
@given(text=st.text(max_size=80))
def test_escaped_text_never_opens_markup(text):
    """Whatever a name holds, md() leaves no unescaped [, <, backtick or bare address, and plot() no tag."""
    import re

    from ui.text import code, md, plot

    out = md(text)
    assert "\n" not in out
    unescaped = re.sub(r"\\.", "", out)  # what is left once every escaped character is taken out
    assert not set("[]<>`*_|~$") & set(unescaped)
    assert "://" not in unescaped
    assert "<" not in plot(text) and ">" not in plot(text)
    fence = code(text)
    assert fence.startswith("`") and fence.endswith("`")


@FUZZ
@given(v4=st.integers(0, 2**32 - 1), form=st.sampled_from(["mapped", "compatible", "nat64", "6to4"]))
def test_an_ipv6_address_that_carries_an_ipv4_one_is_judged_by_it(v4, form):
    import ipaddress

    from engine.io.urlpolicy import StreamError, check_stream_url

    inner = ipaddress.IPv4Address(v4)
    six = {"mapped": (0xFFFF << 32) | v4, "compatible": v4, "nat64": (0x64FF9B << 96) | v4,
           "6to4": (0x2002 << 112) | (v4 << 80)}[form]
    url = f"http://[{ipaddress.IPv6Address(six)}]/x"
    if form == "compatible" and v4 <= 1:
        return  # :: and ::1 are IPv6's own
    try:
        check_stream_url(url, "http://*", False, lambda h: [])
        allowed = True
    except StreamError:
        allowed = False
    assert allowed == inner.is_global


@FUZZ
@given(body=st.text(max_size=400))
def test_any_playlist_text_gives_addresses_or_nothing(body):
    from engine.io.playlists import addresses

    media, nested = addresses("#EXTM3U\n" + body, "http://h/a/live.m3u8")
    assert all(isinstance(u, str) for u in media + nested)
