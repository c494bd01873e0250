"""The SSRF guard: every refusal reason, the allow-list, and resolution of every address."""

from __future__ import annotations

import pytest

from artwatch.urlsafety import UnsafeURL, check_url, netloc_of, parse_url


def fake(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/lot/1", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("", "empty"),
        ("http://user:pw@example.com/", "credentials"),
        ("http:///no-host", "no_host"),
        ("http://example.com:99999/", "malformed"),
    ],
)
def test_refuses_bad_syntax_and_schemes(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL) as err:
        parse_url(url)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link_local"),
        ("fe80::1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 is unwrapped
        ("100.64.0.1", "not_global"),  # carrier-grade NAT
    ],
)
def test_refuses_non_public_addresses(address: str, reason: str) -> None:
    with pytest.raises(UnsafeURL) as err:
        check_url("http://lots.example/lot/1", resolver=fake(address))
    assert err.value.reason == reason


def test_public_address_passes_and_every_address_is_checked() -> None:
    ok = check_url("https://lots.example/lot/1", resolver=fake("93.184.216.34"))
    assert ok.port == 443 and ok.addresses == ("93.184.216.34",)
    with pytest.raises(UnsafeURL) as err:  # one bad answer among good ones is enough
        check_url("https://lots.example/", resolver=fake("93.184.216.34", "10.0.0.1"))
    assert err.value.reason == "private"


def test_allow_list_is_per_host_and_port() -> None:
    allowed = {netloc_of("http://127.0.0.1:8123/")}
    check_url("http://127.0.0.1:8123/lot/5", allow_private=allowed)
    with pytest.raises(UnsafeURL):  # same host, another port (e.g. Redis) stays refused
        check_url("http://127.0.0.1:6379/", allow_private=allowed)
    with pytest.raises(UnsafeURL):
        check_url("http://169.254.169.254/latest/meta-data/", allow_private=allowed)


def test_unresolvable_host_is_refused() -> None:
    def broken(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(UnsafeURL) as err:
        check_url("http://no-such-host.invalid/", resolver=broken)
    assert err.value.reason == "unresolvable"


def test_netloc_normalises_default_ports() -> None:
    assert netloc_of("http://Example.COM/x") == "example.com:80"
    assert netloc_of("https://example.com/x") == "example.com:443"
    assert netloc_of("not a url") == ""


def test_connection_time_resolver_check() -> None:
    from twisted.internet.error import DNSLookupError

    from crawler import middlewares
    from crawler.resolver import check_resolved

    assert check_resolved("93.184.216.34", "lots.example") == "93.184.216.34"
    with pytest.raises(DNSLookupError):  # a name that re-resolves to the metadata service
        check_resolved("169.254.169.254", "lots.example")
    middlewares.BROWSER_ALLOW_PRIVATE.add("house.test:8080")
    try:
        assert check_resolved("10.0.0.7", "house.test") == "10.0.0.7"
    finally:
        middlewares.BROWSER_ALLOW_PRIVATE.discard("house.test:8080")
