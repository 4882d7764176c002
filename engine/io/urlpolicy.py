"""Which stream addresses the app may open for a visitor (the ``stream_allow`` setting, docs/security.md).

A server that fetches any address a visitor types can be steered at its own network (a loopback admin page, a
cloud metadata address) and its errors and timings map that network. So, in the app:

* while the server listens on localhost alone, the visitor is the operator: with ``stream_allow`` empty any
  address of a scheme FFmpeg reads here is opened, as on the command line;
* served beyond localhost, only addresses matching an allowed pattern are opened (none while ``stream_allow`` is
  empty), and the host is resolved first: a loopback, private, link-local or otherwise non-public address is
  refused unless a pattern names that host or its network explicitly (a ``*`` never lets one through).

A pattern is ``scheme://host[:port]``: ``https://cdn.example.com``, ``https://*.example.com``, ``https://*``,
``rtsp://10.0.0.5``, ``rtsp://10.1.0.0/16`` (a network); without a port it allows the scheme's default port only,
``:*`` any port. ``check_stream_url`` returns the address or raises
StreamError with a one-line reason; the command line (the operator's) does not use it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlsplit

from engine.errors import VideoError


class StreamError(VideoError):
    """A stream address this app may not open for a visitor, or cannot read as an address."""


SCHEMES = ("http", "https", "rtsp", "rtmp", "hls")  # those engine.io.video.is_url accepts
DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtmp": 1935, "hls": 80}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]


@dataclass(frozen=True)
class Pattern:
    """One allowed ``scheme://host[:port]``: host is a name, ``*``, ``*.suffix``, an address or a network."""

    scheme: str
    host: str
    port: int | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    @property
    def explicit(self) -> bool:
        """True when it names one host or network (which may then be a private one), not a wildcard."""
        return not self.host.startswith("*")

    def matches(self, scheme: str, host: str, port: int, addresses: Iterable[IPAddress] = ()) -> bool:
        if scheme != self.scheme or (self.port is not None and port != self.port):
            return False
        if self.network is not None:
            literal = _literal(host)
            found = [literal] if literal is not None else list(addresses)
            return bool(found) and all(_plain(a) in self.network for a in found)
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


def parse_patterns(text: str) -> list[Pattern]:
    """The patterns of a ``stream_allow`` setting (comma- or space-separated); StreamError names a bad one."""
    out = []
    for raw in text.replace(",", " ").split():
        parts = urlsplit(raw if "://" in raw else f"//{raw}")
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise StreamError(f"LIVEMATCH_STREAM_ALLOW: {raw!r} needs one of the schemes {', '.join(SCHEMES)}://")
        netloc = parts.netloc.lower()
        host, port = netloc, None
        if netloc.count(":") == 1 or (netloc.startswith("[") and "]:" in netloc):
            host, _, p = netloc.rpartition(":")
            try:
                port = None if p == "*" else int(p)
            except ValueError:
                raise StreamError(f"LIVEMATCH_STREAM_ALLOW: {raw!r} has a port that is not a number") from None
        else:
            port = DEFAULT_PORTS[scheme]  # no port named: the scheme's own (a pattern does not open every port)
        host = host.strip("[]")
        network = None
        if parts.path not in ("", "/"):  # rtsp://10.1.0.0/16
            try:
                network = ipaddress.ip_network(f"{host}{parts.path}", strict=False)
            except ValueError:
                raise StreamError(f"LIVEMATCH_STREAM_ALLOW: {raw!r} is neither a host nor a network") from None
        if not host:
            raise StreamError(f"LIVEMATCH_STREAM_ALLOW: {raw!r} names no host")
        out.append(Pattern(scheme, host, port, network))
    return out


def system_resolver(host: str) -> list[str]:
    """The addresses a host name resolves to (an address resolves to itself)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})


def check_stream_url(url: str, allow: str = "", local: bool = True, resolve: Resolver = system_resolver) -> str:
    """The address when the app may open it (see the module's docstring); StreamError with the reason otherwise.
    ``local``: the server listens on localhost alone. ``resolve``: host name -> addresses (replaced in tests)."""
    return vet(url, allow, local, resolve)[0]


def vet(url: str, allow: str = "", local: bool = True, resolve: Resolver = system_resolver,
        always_resolve: bool = False) -> tuple[str, list[IPAddress]]:
    """``check_stream_url``'s address and the addresses its host resolved to (the ones to connect to; empty when
    nothing was resolved: a local server with no patterns, or ``local`` without ``always_resolve``)."""
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise StreamError(f"{text}: not a valid address") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower().rstrip(".")
    if scheme not in SCHEMES:
        raise StreamError(f"{text}: not a stream address. Use http(s)://, rtsp:// or rtmp://.")
    if not host:
        raise StreamError(f"{text}: the address names no host")
    patterns = parse_patterns(allow)
    if local and not patterns:
        return text, []
    if not patterns:
        raise StreamError("this server opens no stream addresses for its visitors; the operator allows some with "
                          "LIVEMATCH_STREAM_ALLOW (docs/security.md)")
    port = port or DEFAULT_PORTS[scheme]
    by_name = [p for p in patterns if p.network is None and p.matches(scheme, host, port)]
    if not by_name and not any(p.network is not None and p.scheme == scheme for p in patterns):
        raise StreamError(f"{scheme}://{host}:{port}: not an address this server may open (allowed: "
                          f"{', '.join(_shown(p) for p in patterns)})")  # refused before any name is looked up
    addresses: list[IPAddress] = []
    if not local or always_resolve:  # resolved before anything is opened
        literal = _literal(host)
        try:
            found = [str(literal)] if literal is not None else resolve(host)
            addresses = [_plain(ipaddress.ip_address(a.split("%")[0])) for a in found]
        except (OSError, ValueError, UnicodeError):
            raise StreamError(f"{host}: the host name cannot be resolved") from None
        if not addresses:
            raise StreamError(f"{host}: the host name cannot be resolved")
    matching = [p for p in patterns if p.matches(scheme, host, port, addresses)]
    if not matching:
        raise StreamError(f"{scheme}://{host}:{port}: not an address this server may open (allowed: "
                          f"{', '.join(_shown(p) for p in patterns)})")
    explicit = any(p.explicit for p in matching)
    for a in addresses:
        if not a.is_global and not explicit:
            raise StreamError(f"{host}: a loopback, private or link-local address ({a}); this server opens it only "
                              "when LIVEMATCH_STREAM_ALLOW names that host or its network")
    return text, addresses


@dataclass(frozen=True)
class StreamPolicy:
    """The app's stream policy as one value: the ``stream_allow`` patterns and whether the server is local.
    ``guarded``: every address the stream leads to (redirects, playlist entries) must pass it, so its bytes are
    fetched through engine.io.egress; an unguarded policy (localhost, no patterns) opens anything, as the command
    line does."""

    allow: str = ""
    local: bool = True
    resolve: Resolver = system_resolver

    @property
    def guarded(self) -> bool:
        return not (self.local and not parse_patterns(self.allow))

    def check(self, url: str) -> str:
        return vet(url, self.allow, self.local, self.resolve)[0]

    def addresses(self, url: str) -> list[IPAddress]:
        """The checked addresses to connect to for ``url`` (StreamError when it may not be opened)."""
        return vet(url, self.allow, self.local, self.resolve, always_resolve=True)[1]


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _plain(a: IPAddress) -> IPAddress:
    """An IPv6 address that carries an IPv4 one, judged as that IPv4 address: IPv4-mapped (::ffff:127.0.0.1),
    IPv4-compatible (::127.0.0.1), NAT64 (64:ff9b::7f00:1), 6to4 (2002:7f00:1::) and Teredo (the client)."""
    if not isinstance(a, ipaddress.IPv6Address):
        return a
    if a.ipv4_mapped is not None:
        return a.ipv4_mapped
    if a.sixtofour is not None:
        return a.sixtofour
    if a.teredo is not None:
        return a.teredo[1]
    value = int(a)
    if a in NAT64 or a in NAT64_LOCAL:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d (deprecated IPv4-compatible); :: and ::1 stay IPv6
        return ipaddress.IPv4Address(value)
    return a


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _shown(p: Pattern) -> str:
    host = str(p.network) if p.network is not None else p.host
    return f"{p.scheme}://{host}" + (f":{p.port}" if p.port is not None else ":*")
