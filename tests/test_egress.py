"""Every hop of a visitor's stream is checked (issue 30): an allowed server that redirects, or lists a playlist
segment, to a refused one gets no request through to it, and the visitor reads one line saying why. The check
sits in one proxy (engine.io.egress) that the project's requests and FFmpeg's both pass."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from support.apptest import assert_clean, open_app, page_text, use_catalogue
from test_stream import _read_all, _write_hls

from engine.errors import VideoError
from engine.io.catalogue import load_catalogue
from engine.io.playlists import addresses
from engine.io.stream import StreamReader
from engine.io.urlpolicy import StreamError, StreamPolicy


@contextmanager
def _server(folder: Path | None = None, routes: dict | None = None) -> Iterator[tuple[str, list[str]]]:
    """A loopback server: ``routes`` maps a path to (status, headers, body) or a callable(handler) -> that; other
    paths are files of ``folder`` (with byte ranges). Yields (base URL, the paths it was asked for)."""
    from support.browser import _RangeHandler

    asked: list[str] = []

    class Handler(_RangeHandler):
        def do_GET(self):  # noqa: N802
            asked.append(self.path)
            route = (routes or {}).get(self.path.split("?")[0])
            if route is None:
                return super().do_GET()
            status, headers, body = route(self) if callable(route) else route
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def translate_path(self, path):
            return str(Path(folder or ".") / path.lstrip("/").split("?")[0])

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def two_servers(tmp_path: Path, clip_path):
    """(allowed base, refused base, what the refused one was asked, policy allowing only the first, routes)."""
    clip = clip_path(n_frames=30, fps=10.0)
    hls = _write_hls(tmp_path / "hls")
    routes: dict = {}
    with _server(hls.parent) as (refused, refused_asked), _server(clip.parent, routes) as (allowed, _):
        policy = StreamPolicy(f"http://{allowed.split('//')[1]}", local=False)
        yield allowed, refused, refused_asked, policy, routes


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_redirect_to_a_refused_server_is_not_followed(two_servers):
    allowed, refused, asked, policy, routes = two_servers
    routes["/go.mp4"] = (302, {"Location": f"{refused}/internal-admin/clip.mp4?token=SECRET"}, b"")
    with pytest.raises(StreamError) as e:
        StreamReader(f"{allowed}/go.mp4", 1.0, policy=policy)
    assert "redirects to" in _one_line(e) and "may not open" in str(e.value)
    assert asked == []


def test_a_playlist_segment_on_a_refused_server_is_refused_before_any_is_fetched(two_servers):
    allowed, refused, asked, policy, routes = two_servers
    body = f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{refused}/seg0.ts\n#EXT-X-ENDLIST\n".encode()
    routes["/live.m3u8"] = (200, {"Content-Type": "application/vnd.apple.mpegurl"}, body)
    with pytest.raises(StreamError) as e:
        StreamReader(f"{allowed}/live.m3u8", 1.0, policy=policy)
    assert "the playlist" in _one_line(e) and f"{refused}/seg0.ts" in str(e.value)
    # a variant playlist (master -> media) and a key URI are followed too
    routes["/master.m3u8"] = (200, {}, b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlive.m3u8\n")
    with pytest.raises(StreamError, match="seg0.ts"):
        StreamReader(f"{allowed}/master.m3u8", 1.0, policy=policy)
    routes["/key.m3u8"] = (200, {}, f'#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="{refused}/k"\n'.encode())
    with pytest.raises(StreamError, match="/k, which this server may not open"):
        StreamReader(f"{allowed}/key.m3u8", 1.0, policy=policy)
    assert asked == []


def test_ffmpeg_itself_cannot_follow_a_redirect_the_probe_did_not_see(two_servers):
    """The server answers the project's one-byte probe, then redirects FFmpeg's own request: FFmpeg's requests pass
    the proxy, which refuses the target; the refused server is never asked, and the reason is the error."""
    allowed, refused, asked, policy, routes = two_servers

    def sneaky(handler):
        if handler.headers.get("Range") == "bytes=0-0":
            return 206, {"Content-Range": "bytes 0-0/1000", "Content-Type": "video/mp4"}, b"\0"
        return 302, {"Location": f"{refused}/internal/clip.mp4"}, b""

    routes["/sneaky.mp4"] = sneaky
    with pytest.raises(VideoError) as e:
        with StreamReader(f"{allowed}/sneaky.mp4", 1.0, policy=policy) as reader:
            reader.next_frames(3)
    assert isinstance(e.value, StreamError) and "refused" in _one_line(e) and "/internal/clip.mp4" in str(e.value)
    assert asked == []


def test_a_live_playlist_that_turns_to_a_refused_server_after_the_check_gets_nothing_from_it(two_servers):
    allowed, refused, asked, policy, routes = two_servers
    served = {"n": 0}

    def turning(handler):  # the project's check sees a clean playlist; FFmpeg's read names the refused server
        served["n"] += 1
        seg = "clip.mp4" if served["n"] == 1 else f"{refused}/seg0.ts"
        return 200, {"Content-Type": "application/vnd.apple.mpegurl"}, \
            f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{seg}\n#EXT-X-ENDLIST\n".encode()

    routes["/turn.m3u8"] = turning
    with pytest.raises(VideoError):
        with StreamReader(f"{allowed}/turn.m3u8", 1.0, policy=policy) as reader:
            reader.next_frames(3)
    assert asked == []


def test_streams_that_stay_on_allowed_servers_play_through_the_check(two_servers, tmp_path):
    allowed, _, _, policy, routes = two_servers
    with StreamReader(f"{allowed}/clip.mp4", 1.0, policy=policy) as reader:  # a file, with byte ranges
        assert [f.index for f in _read_all(reader)] == [0, 10, 20]
    routes["/hop.mp4"] = (302, {"Location": f"{allowed}/clip.mp4"}, b"")  # a redirect on the allowed server
    with StreamReader(f"{allowed}/hop.mp4", 1.0, policy=policy) as reader:
        assert len(_read_all(reader)) == 3
    hls = _write_hls(tmp_path / "ok")
    with _server(hls.parent) as (base, _):
        policy2 = StreamPolicy(f"http://{base.split('//')[1]}", local=False)
        with StreamReader(f"{base}/live.m3u8", 0.5, policy=policy2) as reader:
            assert len(_read_all(reader, per_call=3)) >= 8


def test_playlist_addresses_are_read_from_hls_and_dash():
    media, nested = addresses("#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\nseg/1.ts\nhttp://x/2.ts\n"
                              "#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/index\n", "http://h/a/live.m3u8")
    assert media == ["http://h/a/init.mp4", "http://h/a/seg/1.ts", "http://x/2.ts"]
    assert nested == ["http://h/a/low/index"]
    mpd = '<MPD><BaseURL>http://evil/</BaseURL><SegmentTemplate media="s$Number$.m4s" initialization="i.mp4"/></MPD>'
    assert addresses(mpd, "http://h/m.mpd")[0] == ["http://evil/", "http://h/s$Number$.m4s", "http://h/i.mp4"]


def test_the_visitor_reads_one_line_saying_why(monkeypatch, demo_dir: Path, two_servers):
    import ui.state

    allowed, refused, asked, _, routes = two_servers
    routes["/go.mp4"] = (302, {"Location": f"{refused}/internal-admin/clip.mp4?token=SECRET"}, b"")
    use_catalogue(monkeypatch, demo_dir)
    monkeypatch.setenv("LIVEMATCH_STREAM_ALLOW", f"http://{allowed.split('//')[1]}")
    monkeypatch.setattr(ui.state, "bind_address", lambda: "0.0.0.0")
    at = open_app()
    at.radio(key="match.mode").set_value("Stream URL").run()
    at.text_input(key="match.stream_url").set_value(f"{allowed}/go.mp4").run()
    at.button(key="match.stream_start").click().run()
    assert_clean(at)
    assert len(at.error) == 1 and "\n" not in at.error[0].value
    assert "redirects to" in at.error[0].value and "may not open" in at.error[0].value
    assert "Live" not in page_text(at) and asked == []
    assert load_catalogue(demo_dir).products  # the page still works
