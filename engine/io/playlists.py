"""The addresses inside an HLS or DASH playlist, checked against the stream policy before FFmpeg fetches any.

An HLS playlist lists its segments (and, as a master playlist, the variant playlists) one address a line, and
keys, maps and alternative renditions as ``URI="..."`` attributes; a DASH manifest names them in ``BaseURL``
elements and ``media``/``initialization``/``sourceURL`` attributes. Each is resolved against the playlist's own
address and checked; a variant playlist is read and checked in turn (at most MAX_PLAYLISTS, MAX_DEPTH deep). A
live playlist lists new segments as it plays: those pass the egress proxy's check (engine.io.egress), which
refuses the request; this check lets the visitor read why before anything is fetched.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlsplit

from engine.errors import VideoError
from engine.io.urlpolicy import StreamError, StreamPolicy

MAX_BYTES = 1 << 20  # a playlist longer than this is refused
MAX_PLAYLISTS = 20
MAX_DEPTH = 3
TIMEOUT_S = 15.0
_URI_ATTR = re.compile(r'URI="([^"]*)"')
_DASH = re.compile(r'<BaseURL[^>]*>\s*([^<\s]+)\s*</BaseURL>|(?:media|initialization|sourceURL|href)="([^"]*)"')
PLAYLIST_SUFFIXES = (".m3u8", ".m3u")


def addresses(text: str, base: str) -> tuple[list[str], list[str]]:
    """The absolute addresses a playlist names: (media and keys, nested playlists)."""
    if "<MPD" in text[:4096] or "<mpd" in text[:4096]:
        found = [a or b for a, b in _DASH.findall(text)]
        return [urljoin(base, u) for u in found if u], []
    media, nested = [], []
    variant_next = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            for uri in _URI_ATTR.findall(line):
                target = urljoin(base, uri)
                (nested if line.startswith(("#EXT-X-MEDIA", "#EXT-X-I-FRAME-STREAM-INF")) else media).append(target)
            variant_next = variant_next or line.startswith("#EXT-X-STREAM-INF")
            continue
        target = urljoin(base, line)
        is_list = variant_next or urlsplit(target).path.lower().endswith(PLAYLIST_SUFFIXES)
        (nested if is_list else media).append(target)
        variant_next = False
    return media, nested


def check_playlist(url: str, policy: StreamPolicy, opener: urllib.request.OpenerDirector) -> int:
    """Read the playlist at ``url`` (and its variant playlists) and check every address it names; the number of
    addresses checked. StreamError with one line naming the first address refused."""
    seen: set[str] = set()
    todo = [(url, 0)]
    checked = 0
    while todo:
        current, depth = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        if len(seen) > MAX_PLAYLISTS or depth > MAX_DEPTH:
            raise StreamError(f"{url}: the playlist nests more than {MAX_PLAYLISTS} playlists or {MAX_DEPTH} levels")
        text = _read(current, opener)
        media, nested = addresses(text, current)
        for target in media + nested:
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise StreamError(f"the playlist {current} lists {target}, which is not an http(s) address")
            try:
                policy.check(target)
            except StreamError as e:
                raise StreamError(f"the playlist {current} lists {target}, which this server may not open ({e})") \
                    from None
            checked += 1
        todo.extend((n, depth + 1) for n in nested)
    return checked


def _read(url: str, opener: urllib.request.OpenerDirector) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": "livematch"})
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - checked http(s) only
            body = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise VideoError(f"{url}: cannot read the playlist (the server answered {e.code} {e.reason})") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise VideoError(f"{url}: cannot read the playlist ({getattr(e, 'reason', e)})") from e
    if len(body) > MAX_BYTES:
        raise StreamError(f"{url}: the playlist is over {MAX_BYTES >> 20} MB")
    return body.decode("utf-8", "replace")
