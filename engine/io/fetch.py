"""A video file on an ordinary web server, fetched to a temporary file when it cannot be streamed.

FFmpeg reads an MP4 over HTTP(S) by seeking to its index (the ``moov`` box), which clips recorded by a camera or
written by OpenCV keep at the end of the file. A server without byte ranges (``python -m http.server``, many simple
servers) only sends the file from its start, and FFmpeg then finds no video stream in it. Such a URL, when it is a
finite file (a known length, not an HLS playlist), is downloaded whole to a private temporary folder, within the
download limit, and read from there; the folder is removed afterwards. A server with byte ranges, an HLS playlist, a
live HTTP stream (no length) and RTSP/RTMP are read by FFmpeg as before.

The limit is the app's upload limit (``server.maxUploadSize`` in .streamlit/config.toml, 200 MB by default), or
``LIVEMATCH_DOWNLOAD_LIMIT_MB``, so a URL can fetch no more than an upload may bring.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from engine.config import variable
from engine.errors import VideoError
from engine.io import egress
from engine.io.playlists import check_playlist
from engine.io.urlpolicy import StreamError, StreamPolicy

Progress = Callable[[str, float], None]
DEFAULT_LIMIT_MB = 200  # Streamlit's own default for server.maxUploadSize
CONFIG_TOML = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"
TIMEOUT_S = 15.0  # per connection and per read, as engine.io.video.STREAM_TIMEOUT_MS
CHUNK = 1 << 20
PLAYLIST_TYPES = ("mpegurl", "dash+xml")
PLAYLIST_SUFFIXES = (".m3u8", ".m3u", ".mpd")
FETCH_PREFIX = "livematch-fetch-"  # <tempdir>/livematch-fetch-<pid>-<random>/, swept once its process is gone


def download_limit_mb() -> float:
    """LIVEMATCH_DOWNLOAD_LIMIT_MB, else the app's upload limit (server.maxUploadSize), else 200."""
    env = variable("LIVEMATCH_DOWNLOAD_LIMIT_MB").strip()
    if env:
        try:
            limit = float(env)
            if limit <= 0:
                raise ValueError(env)
            return limit
        except ValueError as e:
            raise VideoError(f"LIVEMATCH_DOWNLOAD_LIMIT_MB={env!r}: not a positive number of megabytes") from e
    try:
        with open(CONFIG_TOML, "rb") as f:
            return max(1, int(tomllib.load(f).get("server", {}).get("maxUploadSize", DEFAULT_LIMIT_MB)))
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError):
        return DEFAULT_LIMIT_MB


@dataclass(frozen=True)
class RemoteFile:
    """What a web server says about a URL, asked for its first byte."""

    url: str
    size: int | None  # the file's length in bytes; None when unknown (a live or chunked response)
    ranges: bool  # the server answered the byte range (206): FFmpeg can seek in it
    content_type: str

    @property
    def is_playlist(self) -> bool:
        path = urllib.parse.urlparse(self.url).path.lower()
        return any(t in self.content_type for t in PLAYLIST_TYPES) or path.endswith(PLAYLIST_SUFFIXES)

    @property
    def needs_download(self) -> bool:
        """A finite file FFmpeg cannot seek in: read it from a local copy."""
        return not self.ranges and self.size is not None and not self.is_playlist


def is_http(url: str | Path) -> bool:
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def probe_url(url: str, timeout_s: float = TIMEOUT_S, opener: urllib.request.OpenerDirector | None = None
              ) -> RemoteFile:
    """Ask the server for the first byte: whether it serves ranges, and the file's length (``url`` of the answer:
    the address after any redirects). A VideoError when the server cannot be reached or has no such file (404,
    410); a server that refuses the request otherwise is left to FFmpeg (nothing known: no download). ``opener``:
    how to reach the server (engine.io.egress's, whose redirects are checked; urllib's default otherwise)."""
    request = urllib.request.Request(url, headers={"Range": "bytes=0-0", "User-Agent": "livematch"})
    try:
        with _open(opener)(request, timeout=timeout_s) as response:  # noqa: S310 - http(s) only
            status = response.status
            headers = response.headers
            url = response.geturl() or url
    except urllib.error.HTTPError as e:
        if e.code in (404, 410):
            raise VideoError(f"{url}: cannot open the stream (the server answered {e.code} {e.reason})") from e
        return RemoteFile(url, None, False, "")  # a server that refuses this request: let FFmpeg try as before
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise VideoError(f"{url}: cannot open the stream ({reason})") from e
    content_type = (headers.get("Content-Type") or "").lower()
    if status == 206:
        total = (headers.get("Content-Range") or "").rpartition("/")[2].strip()
        return RemoteFile(url, int(total) if total.isdigit() else None, True, content_type)
    length = (headers.get("Content-Length") or "").strip()
    return RemoteFile(url, int(length) if length.isdigit() else None, False, content_type)


def download(url: str, folder: Path, limit_mb: float, progress: Progress, size: int | None = None,
             timeout_s: float = TIMEOUT_S, opener: urllib.request.OpenerDirector | None = None) -> Path:
    """Fetch ``url`` into ``folder`` (its file name kept, made safe), at most ``limit_mb`` megabytes, reporting
    ("download", fraction); a VideoError when it is too large, cut short or unreachable."""
    limit = int(limit_mb * 1024 * 1024)
    if size is not None and size > limit:
        raise VideoError(too_large(url, size, limit_mb))
    name = Path(urllib.parse.urlparse(url).path).name or "clip.mp4"
    target = folder / ("".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "clip.mp4")
    request = urllib.request.Request(url, headers={"User-Agent": "livematch"})
    got = 0
    progress("download", 0.0)
    try:
        with _open(opener)(request, timeout=timeout_s) as response, open(target, "wb") as out:  # noqa: S310
            length = response.headers.get("Content-Length", "")
            size = int(length) if length.isdigit() else size
            if size is not None and size > limit:
                raise VideoError(too_large(url, size, limit_mb))
            while chunk := response.read(CHUNK):
                got += len(chunk)
                if got > limit:
                    raise VideoError(too_large(url, got, limit_mb, more=True))
                out.write(chunk)
                if size:
                    progress("download", min(got / size, 1.0))
    except urllib.error.HTTPError as e:
        raise VideoError(f"{url}: cannot open the stream (the server answered {e.code} {e.reason})") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise VideoError(f"{url}: the download failed after {got / 2**20:.1f} MB ({reason})") from e
    if size is not None and got < size:
        raise VideoError(f"{url}: the download stopped at {got / 2**20:.1f} of {size / 2**20:.1f} MB")
    if got == 0:
        raise VideoError(f"{url}: the server sent an empty file")
    progress("download", 1.0)
    return target


def _open(opener: urllib.request.OpenerDirector | None) -> Callable:
    return opener.open if opener is not None else urllib.request.urlopen


def too_large(url: str, size: int, limit_mb: float, more: bool = False) -> str:
    return (f"{url}: the server cannot stream this file (no byte ranges), and it is {'over ' if more else ''}"
            f"{size / 2**20:.1f} MB, over the {limit_mb:g} MB download limit (the upload limit, server.maxUploadSize; "
            "or LIVEMATCH_DOWNLOAD_LIMIT_MB)")


@contextlib.contextmanager
def readable(source: str | Path, progress: Progress | None = None, limit_mb: float | None = None,
             policy: StreamPolicy | None = None) -> Iterator[str | Path]:
    """``source`` as FFmpeg can read it: a local copy of an HTTP(S) file its server cannot stream (removed on exit),
    otherwise ``source`` itself (a file, a server with byte ranges, a playlist, a live stream, RTSP, RTMP).
    With a guarded ``policy`` every request passes engine.io.egress: redirects are checked before they are
    followed (and FFmpeg is given the address they lead to), a playlist's addresses are checked before any is
    fetched, and a refusal is a StreamError that says why."""
    guard = egress.for_policy(policy) if policy is not None and policy.guarded else None
    if guard is not None and isinstance(source, str) and "://" in source:
        policy.check(source)
    if not is_http(source):
        yield source
        return
    opener = guard.opener() if guard is not None else None
    mark = guard.mark() if guard is not None else 0
    try:
        remote = probe_url(str(source), opener=opener)
        if guard is not None and remote.is_playlist:
            check_playlist(remote.url, guard.policy, opener)
    except VideoError as e:
        refused = guard.refusals(mark) if guard is not None else []
        if refused and not isinstance(e, StreamError):
            raise StreamError(f"{source}: refused, {refused[0]}") from e
        raise
    if guard is not None and guard.refusals(mark):
        raise StreamError(f"{source}: refused, {guard.refusals(mark)[0]}")
    if not remote.needs_download:
        yield remote.url if guard is not None else source
        return
    sweep_stale()
    folder = private_folder()
    try:
        local = download(remote.url if guard is not None else str(source), folder,
                         download_limit_mb() if limit_mb is None else limit_mb,
                         progress or (lambda stage, fraction: None), remote.size, opener=opener)
        try:
            yield local
        except VideoError as e:
            raise relabel(e, local, str(source)) from e
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def private_folder(prefix: str = FETCH_PREFIX) -> Path:
    """A new private temporary folder (mode 0700) named by this process, so that ``sweep_stale`` can tell when
    it was left behind."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def sweep_stale(root: str | Path | None = None, prefix: str = FETCH_PREFIX, idle_s: float | None = None
                ) -> list[Path]:
    """Remove the temporary folders left behind (a killed ``timeline``, an app session that ended without closing
    its run): ``<prefix><pid>-*`` of this user whose process no longer runs, or, with ``idle_s``, which nobody
    touched for that long. The folders removed."""
    removed = []
    now = time.time()
    for folder in Path(root or tempfile.gettempdir()).glob(f"{prefix}*"):
        pid = folder.name[len(prefix):].partition("-")[0]
        try:
            stat = folder.lstat()
            if not pid.isdigit() or folder.is_symlink() or stat.st_uid != os.getuid():
                continue
            idle = idle_s is not None and now - stat.st_mtime > idle_s
            if _alive(int(pid)) and not idle:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def relabel(error: VideoError, local: str | Path, url: str) -> VideoError:
    """An error about a fetched copy ("clip.mp4: not a readable video") told about the address it came from."""
    text, prefix = str(error), f"{Path(local).name}: "
    if isinstance(local, Path) and text.startswith(prefix):
        return VideoError(f"{url}: {text[len(prefix):]} (the file was downloaded: its server cannot stream it)")
    return error
