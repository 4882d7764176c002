"""Every hop of a visitor's stream checked: a loopback proxy through which the project's own requests (urllib)
and FFmpeg's (through OpenCV) reach the network while a stream policy is guarded (engine.io.urlpolicy).

A policy that checks only the address a visitor typed can be walked around: the allowed server answers ``302`` to
an internal address, or serves an HLS playlist whose segments lie there, and FFmpeg follows. So, for a guarded
policy, nothing connects to a stream's servers directly:

* FFmpeg is opened with ``http_proxy`` naming this proxy and a protocol whitelist (no ``file`` of the server's
  own, no other protocol a playlist could name); every request it makes, a redirect's target, a playlist reload
  and each segment included, arrives here as ``GET http://host/...`` or ``CONNECT host:443``;
* the project's probe, download and playlist reads go through the same proxy (urllib's ProxyHandler), with their
  redirects checked before they are followed, so the visitor reads why (``redirect_checker``);
* the proxy checks each request's address with the policy, resolves the host once and connects to the address it
  checked (a DNS answer that changes between the check and the connection cannot slip through); a refused request
  is answered ``403`` and its reason is kept for the reader to tell (``refusals``).

RTSP and RTMP cannot pass an HTTP proxy: their first address is checked, and FFmpeg's whitelist for them names
only their own protocols (docs/security.md, known limits).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import threading
import urllib.error
import urllib.request
from collections import deque
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from engine.io.urlpolicy import StreamError, StreamPolicy

log = logging.getLogger(__name__)
HEAD_LIMIT = 64 * 1024  # a request head longer than this is refused
IDLE_S = 30.0  # a relayed connection idle this long is closed
HTTP_WHITELIST = "crypto,data,http,https,tls,tcp,httpproxy"  # no file: a playlist may not name the server's own
OTHER_WHITELIST = {"rtsp": "rtsp,rtp,srtp,udp,tcp,tls", "rtmp": "rtmp,rtmps,tcp,tls"}
_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_env_lock = threading.Lock()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client = self.request
        client.settimeout(IDLE_S)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(8192)
            if not chunk or len(head) > HEAD_LIMIT:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            return
        if method.upper() == "CONNECT":
            url, origin = f"https://{target}", None
        else:
            url = target
            parts = urlsplit(target)
            origin = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            if origin is not None and urlsplit(url).scheme.lower() != "http":
                raise StreamError(f"{url}: only http:// requests pass this proxy")
            addresses = self.server.policy.addresses(url)
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port or (443 if origin is None else 80)
            if not addresses:  # an unguarded policy resolves nothing: the name as given
                addresses = [host]
        except (StreamError, ValueError) as e:
            self.server.refuse(url, str(e))
            reason = str(e).encode("utf-8", "replace")
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(reason), reason))
            return
        try:
            upstream = socket.create_connection((str(addresses[0]), port), timeout=IDLE_S)
        except OSError as e:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            log.info("egress: %s unreachable (%s)", url, e)
            return
        with upstream:
            if origin is None:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # origin-form, one request per connection
                kept = [h for h in lines[1:] if h.split(":", 1)[0].strip().lower()
                        not in ("connection", "proxy-connection", "proxy-authorization", "keep-alive")]
                request = "\r\n".join([f"{method} {origin} {version}", *kept, "Connection: close", "", ""])
                upstream.sendall(request.encode("latin-1"))
            if rest:
                upstream.sendall(rest)
            _relay(client, upstream)


def _relay(a: socket.socket, b: socket.socket) -> None:
    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    b.settimeout(IDLE_S)
    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join(IDLE_S)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, policy: StreamPolicy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.policy = policy
        self.refused: deque[tuple[int, str, str]] = deque(maxlen=50)  # (number, url, reason)
        self._count = 0
        self._lock = threading.Lock()

    def refuse(self, url: str, reason: str) -> None:
        with self._lock:
            self._count += 1
            self.refused.append((self._count, url, reason))
        log.warning("egress refused %s: %s", url, reason)


class Egress:
    """The proxy of one policy (one per policy and process, started on first use: ``for_policy``)."""

    def __init__(self, policy: StreamPolicy) -> None:
        self.policy = policy
        self._server = _Server(policy)
        self.address = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="livematch-egress", daemon=True).start()

    def mark(self) -> int:
        """A point to ask ``refusals`` from."""
        with self._server._lock:
            return self._server._count

    def refusals(self, since: int = 0) -> list[str]:
        """One line per request refused after ``since``: the address and why."""
        with self._server._lock:
            return [f"{url}: {reason}" if not reason.startswith(url) else reason
                    for n, url, reason in self._server.refused if n > since]

    def opener(self) -> urllib.request.OpenerDirector:
        """A urllib opener whose every request passes this proxy, with redirects checked before they are followed."""
        return urllib.request.build_opener(urllib.request.ProxyHandler({"http": self.address, "https": self.address}),
                                           redirect_checker(self.policy))

    def ffmpeg_options(self, url: str | os.PathLike) -> str:
        """OpenCV's FFmpeg capture options for ``url``: this proxy, and the protocols that may be used (a local
        copy: ``file`` alone)."""
        if not isinstance(url, str) or "://" not in url:
            return "protocol_whitelist;file"
        scheme = urlsplit(url).scheme.lower()
        if scheme in OTHER_WHITELIST:
            return f"protocol_whitelist;{OTHER_WHITELIST[scheme]}"
        return f"protocol_whitelist;{HTTP_WHITELIST}|http_proxy;{self.address}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_proxies: dict[StreamPolicy, Egress] = {}
_proxies_lock = threading.Lock()


def for_policy(policy: StreamPolicy) -> Egress:
    """The running proxy of ``policy`` (started once per process)."""
    with _proxies_lock:
        if policy not in _proxies:
            if os.environ.pop("no_proxy", None) is not None:  # FFmpeg would go around the proxy for those hosts
                log.warning("no_proxy is ignored while stream addresses are checked (engine.io.egress)")
            _proxies[policy] = Egress(policy)
        return _proxies[policy]


def redirect_checker(policy: StreamPolicy) -> urllib.request.HTTPRedirectHandler:
    """A redirect handler that checks each target with ``policy`` before following it (one-line StreamError)."""

    class Checked(urllib.request.HTTPRedirectHandler):
        max_redirections = 5

        def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
            try:
                policy.check(newurl)
            except StreamError as e:
                raise StreamError(f"{req.full_url} redirects to {newurl}, which this server may not open ({e})") \
                    from None
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return Checked()


@contextlib.contextmanager
def ffmpeg_options(options: str | None) -> Iterator[None]:
    """OpenCV reads its FFmpeg options from the environment when a capture is opened: set them for this open
    alone (opens that set options wait for each other; the operator's own options are kept before ours)."""
    if not options:
        yield
        return
    with _env_lock:
        before = os.environ.get(_ENV)
        os.environ[_ENV] = f"{before}|{options}" if before else options
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(_ENV, None)
            else:
                os.environ[_ENV] = before


def http_error_reason(e: urllib.error.HTTPError) -> str:
    """The proxy's reason for a 403 it answered, else the server's status."""
    if e.code == 403:
        with contextlib.suppress(Exception):
            body = e.read(2000).decode("utf-8", "replace").strip()
            if body:
                return body
    return f"the server answered {e.code} {e.reason}"
