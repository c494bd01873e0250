"""SSRF guard: decide whether artwatch may fetch a URL before any byte is sent.

Listing pages, photo links, redirects and manual submissions all come from outside, and a
crawler that follows them blindly can be steered at our own network (the metadata service
on 169.254.169.254, Redis on loopback, the database on a private address). Every fetch the
crawler makes passes through `check_url`: only http(s), a host that resolves, and every
address it resolves to public, unless the host is one a source explicitly allows (the
tests' local auction house on 127.0.0.1 is such a source).

All resolved addresses are checked, not just the first, so a name that answers with one
public and one private address is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

Resolver = Callable[[str, int], list[str]]


class UnsafeURL(ValueError):
    """A URL artwatch refuses to fetch; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, url: str, detail: str) -> None:
        super().__init__(f"refused {url!r}: {reason}: {detail}")
        self.reason = reason
        self.url = url
        self.detail = detail


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed the guard, with what it resolved to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def netloc(self) -> str:
        return host_port(self.host, self.port)


def is_web_url(value: object) -> bool:
    """True for an absolute http(s) URL with a host: the only URLs artwatch stores or links.

    Everything else (`javascript:`, `data:`, `file:`, relative or host-less URLs, and any
    URL holding whitespace or control characters, which browsers strip before reading the
    scheme) is kept or shown as text only. No DNS lookup: this is about what a link may
    be, not whether artwatch may fetch it (`check_url`).
    """
    if not isinstance(value, str) or not value or len(value) > 8192:
        return False
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        return False
    return parts.scheme.lower() in ALLOWED_SCHEMES and bool(parts.hostname)


def host_port(host: str, port: int) -> str:
    """`host:port` in the one spelling used to compare allow-lists."""
    host = host.lower().strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def netloc_of(url: str) -> str:
    """Normalised `host:port` of a URL (default port filled in); '' when it has no host."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return ""
    return host_port(parts.hostname, port) if parts.hostname else ""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


def address_problem(address: str) -> str | None:
    """Why an address is not a public unicast one (None when it is public)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not_global"
    return None


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL artwatch could fetch, or UnsafeURL (no DNS lookup)."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURL("empty", str(url), "no URL given")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port_value = parts.port
    except ValueError as exc:
        raise UnsafeURL("malformed", url, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL("scheme", url, f"only http and https are fetched, not {scheme or '-'}")
    if parts.username or parts.password:
        raise UnsafeURL("credentials", url, "URLs with user:password are not fetched")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURL("no_host", url, "URL has no host name")
    return scheme, host.lower(), port_value or DEFAULT_PORTS[scheme]


def check_url(
    url: str,
    *,
    allow_private: Collection[str] = (),
    resolver: Resolver = system_resolver,
) -> CheckedURL:
    """Return the checked URL or raise UnsafeURL saying why it must not be fetched.

    `allow_private` is a set of `host:port` netlocs (see `netloc_of`) whose non-public
    addresses are accepted: a source that lives on a private network names its own hosts
    there, and nothing else gains access.
    """
    scheme, host, port = parse_url(url)
    url = url.strip()
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL("unresolvable", url, f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise UnsafeURL("unresolvable", url, f"{host} has no address")
    allowed = {n.lower() for n in allow_private}
    if host_port(host, port) not in allowed:
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise UnsafeURL(problem, url, f"{host} resolves to {problem} address {address}")
    return CheckedURL(url, scheme, host, port, tuple(addresses))


def is_safe(url: str, *, allow_private: Collection[str] = ()) -> bool:
    """True when `check_url` accepts the URL (for filters that only need a yes/no)."""
    try:
        check_url(url, allow_private=allow_private)
    except UnsafeURL:
        return False
    return True
