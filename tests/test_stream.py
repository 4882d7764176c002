"""Live streams: a clip served over HTTP and an HLS playlist are read as they play, a frame every few seconds of
stream time; the live match re-ranks after every step; `match URL --live` prints it; a dead URL is one line."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from engine.errors import VideoError
from engine.io.stream import StreamReader
from engine.pipeline.live import LiveMatch


def _write_hls(folder: Path, segments: int = 3, frames: int = 20, fps: int = 10) -> Path:
    """An HLS playlist of MPEG-TS segments written by OpenCV (no ffmpeg binary needed); segment s is grey s*80."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for s in range(segments):
        writer = cv2.VideoWriter(str(folder / f"seg{s}.ts"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                 (96, 64))
        assert writer.isOpened()
        for _ in range(frames):
            writer.write(np.full((64, 96, 3), s * 80, np.uint8))
        writer.release()
    playlist = folder / "live.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
                        + "".join(f"#EXTINF:{frames / fps:.1f},\nseg{s}.ts\n" for s in range(segments))
                        + "#EXT-X-ENDLIST\n")
    return playlist


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/live.m3u8"


def _read_all(reader: StreamReader, per_call: int = 2) -> list:
    frames = []
    for _ in range(100):
        if reader.ended:
            break
        frames += reader.next_frames(per_call)
    assert reader.ended
    return frames


def test_a_served_clip_is_sampled_every_so_many_seconds_of_stream(clip_path, serve):
    path = clip_path(n_frames=40, fps=10.0)  # 4 s
    url = f"{serve(path.parent)}/{path.name}"
    with StreamReader(url, every_s=1.0) as reader:
        frames = _read_all(reader)
    assert [f.index for f in frames] == [0, 10, 20, 30]
    assert [f.time_s for f in frames] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.11)
    assert reader.next_frames(3) == []  # ended: nothing more, no error


def test_an_hls_playlist_is_read_across_its_segments(tmp_path, serve):
    playlist = _write_hls(tmp_path / "hls")
    with StreamReader(f"{serve(playlist.parent)}/{playlist.name}", every_s=0.5) as reader:
        frames = _read_all(reader, per_call=3)
    greys = {int(round(float(np.median(f.image)) / 80)) for f in frames}
    assert greys == {0, 1, 2}, "frames from every segment"
    times = [f.time_s for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)  # stream time never goes back
    assert 8 <= len(frames) <= 13  # 6 s of stream at one frame every 0.5 s


def test_a_dead_stream_is_a_one_line_error():
    with pytest.raises(VideoError, match="cannot open the stream") as e:
        StreamReader(_dead_url(), every_s=2.0)
    assert "\n" not in str(e.value)
    with pytest.raises(VideoError, match="positive"):
        StreamReader(_dead_url(), every_s=0)


def test_live_match_reranks_over_the_recent_frames(engine, demo_dir, serve):
    from engine.io.catalogue import load_catalogue

    clip = next(c for c in load_catalogue(demo_dir).clips.values() if c.truth)
    url = f"{serve(Path(clip.path).parent)}/{Path(clip.path).name}"
    live = LiveMatch(engine, url, every_s=0.5, per_step=1, recent=3)
    updates = []
    while not live.ended and len(updates) < 20:
        updates.append(live.step())
    live.close()
    matched = [u for u in updates if u.added]
    assert len(matched) >= 3 and matched[-1].frames_seen == sum(len(u.added) for u in matched)
    assert all(len(u.result.frames) <= 3 for u in updates)  # the ranking pools the 3 latest frames only
    assert matched[-1].result.frames[-1] == matched[-1].added[-1]
    assert updates[-1].ended and updates[-1].result.top.product_id == clip.truth


@pytest.mark.slow
def test_cli_match_live_prints_the_ranking_as_it_goes(demo_dir, serve):
    from tests.test_cli import run

    clip = sorted((demo_dir / "video").glob("*.mp4"))[1]
    out = run("match", f"{serve(clip.parent)}/{clip.name}", "--live", "--every", "0.5", "--catalogue", str(demo_dir))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(line.startswith("frame ") for line in lines) == 4  # 2 s of clip, a frame every 0.5 s
    assert any("ranking over the last" in line for line in lines)
    assert f"1. {clip.stem}" in out.stdout
    dead = run("match", _dead_url(), "--live", "--catalogue", str(demo_dir))
    assert dead.returncode == 2 and "Traceback" not in dead.stderr and "cannot open the stream" in dead.stderr
    assert len(dead.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------- no byte ranges
def test_a_server_without_byte_ranges_cannot_be_streamed_so_the_file_is_fetched(demo_dir, serve, tmp_path,
                                                                                 monkeypatch):
    """`python -m http.server` ignores Range; the demo clips (written by OpenCV) keep their index at the end, so
    FFmpeg alone finds no video in them. engine.io.fetch sees a finite file without ranges and reads a local copy,
    which is removed afterwards."""
    import tempfile

    from engine.io.fetch import probe_url, readable
    from engine.io.video import probe

    clip = sorted((demo_dir / "video").glob("*.mp4"))[0]
    data = clip.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")  # the premise: the index sits at the end
    plain = f"{serve(clip.parent, ranges=False)}/{clip.name}"
    ranged = f"{serve(clip.parent)}/{clip.name}"
    with pytest.raises(VideoError):  # what FFmpeg alone does with it (issue 20: "no video stream")
        probe(plain)
    remote = probe_url(plain)
    assert (remote.ranges, remote.size, remote.needs_download) == (False, len(data), True)
    assert not probe_url(ranged).needs_download  # a server with ranges is streamed as before
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[tuple[str, float]] = []
    with readable(plain, lambda stage, f: seen.append((stage, f))) as local:
        assert isinstance(local, Path) and local.read_bytes() == data
    assert not local.exists() and not list(tmp_path.glob("livematch-fetch-*"))
    assert seen[0] == ("download", 0.0) and seen[-1] == ("download", 1.0)
    with StreamReader(plain, every_s=0.5) as reader:
        frames = _read_all(reader)
    assert len(frames) == 4 and reader.label == plain  # 2 s of clip, as from a server with ranges
    assert not list(tmp_path.glob("livematch-fetch-*"))  # the copy went with the reader


@pytest.mark.slow
def test_cli_matches_a_clip_from_a_server_without_byte_ranges_and_both_paths_say_the_same_when_too_large(
        demo_dir, serve, monkeypatch):
    from tests.test_cli import run

    clip = sorted((demo_dir / "video").glob("*.mp4"))[1]
    url = f"{serve(clip.parent, ranges=False)}/{clip.name}"
    out = run("match", url, "--catalogue", str(demo_dir))
    assert out.returncode == 0, out.stderr
    assert f"1. {clip.stem}" in out.stdout  # the clip's product ranked first

    monkeypatch.setenv("LIVEMATCH_DOWNLOAD_LIMIT_MB", "0.05")  # under the clip's size
    whole = run("match", url, "--catalogue", str(demo_dir))
    live = run("match", url, "--live", "--catalogue", str(demo_dir))
    assert whole.returncode == live.returncode == 2
    assert whole.stderr.strip() == live.stderr.strip()
    assert "no byte ranges" in whole.stderr and "over the 0.05 MB download limit" in whole.stderr
    assert len(whole.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_fetched_file_that_is_no_video_is_named_by_its_address_in_both_modes(serve, tmp_path, demo_dir):
    from tests.test_cli import run

    (tmp_path / "bad.mp4").write_bytes(b"not a video at all " * 300)
    url = f"{serve(tmp_path, ranges=False)}/bad.mp4"
    whole = run("match", url, "--catalogue", str(demo_dir))
    live = run("match", url, "--live", "--catalogue", str(demo_dir))
    assert whole.returncode == live.returncode == 2
    assert whole.stderr.strip() == live.stderr.strip() == f"error: {url}: not a readable video (the file was " \
                                                          "downloaded: its server cannot stream it)"


def test_a_stream_and_an_upload_of_one_clip_differ_only_in_the_frames_sampled(demo_dir):
    """Issue 20 saw one clip "confident" uploaded and "uncertain" as a stream: a stream is sampled from its start
    every stream_every seconds, an upload at the centres of equal segments; at the same frame numbers both read
    the same pixels, so a difference of verdict comes from the frames chosen, not from the reading."""
    from engine.io.video import probe, read_frames, sample_frames

    clip = sorted((demo_dir / "video").glob("*.mp4"))[0]
    info = probe(clip)
    with StreamReader(clip, every_s=0.5) as reader:
        streamed = _read_all(reader)
    uploaded = sample_frames(clip, len(streamed))
    assert [f.index for f in streamed] == [round(i * 0.5 * info.fps) for i in range(len(streamed))]
    assert {f.index for f in streamed}.isdisjoint(f.index for f in uploaded)
    again = read_frames(clip, [f.index for f in streamed])
    assert all(np.array_equal(a.image, b.image) for a, b in zip(streamed, again))


def test_a_server_that_refuses_the_probe_is_left_to_ffmpeg(monkeypatch):
    """Only a missing file (404, 410) or an unreachable server stops before FFmpeg; any other refusal of the
    one-byte request (403, 405, 416, ...) is not taken to mean anything: the address is read as before."""
    import io
    import urllib.error
    import urllib.request

    from engine.io.fetch import probe_url, readable

    def refuse(code):
        def urlopen(request, timeout=None):
            raise urllib.error.HTTPError(request.full_url, code, "nope", {}, io.BytesIO())
        return urlopen

    monkeypatch.setattr(urllib.request, "urlopen", refuse(405))
    assert not probe_url("http://example.invalid/a.mp4").needs_download
    with readable("http://example.invalid/a.mp4") as source:
        assert source == "http://example.invalid/a.mp4"
    monkeypatch.setattr(urllib.request, "urlopen", refuse(404))
    with pytest.raises(VideoError, match="cannot open the stream \\(the server answered 404 nope\\)"):
        probe_url("http://example.invalid/a.mp4")
