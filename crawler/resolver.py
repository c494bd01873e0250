"""A DNS resolver that re-applies the URL guard at connection time (DNS rebinding).

`UrlSafetyMiddleware` resolves a host before the request is sent, but Twisted resolves it
again when it connects; a hostile DNS server can answer "public" the first time and
"169.254.169.254" the second. This resolver checks the address actually connected to.
Literal IP addresses never reach a resolver, and are fully checked by the middleware.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scrapy.resolver import CachingThreadedResolver
from twisted.internet.defer import Deferred
from twisted.internet.error import DNSLookupError

from artwatch.urlsafety import address_problem
from crawler import middlewares


def allowed_private_hosts() -> set[str]:
    """Host names (any port) of the running source's netlocs that may be private."""
    return {netloc.rsplit(":", 1)[0].strip("[]") for netloc in middlewares.BROWSER_ALLOW_PRIVATE}


def check_resolved(address: str, name: str) -> str:
    """The address, or DNSLookupError when a name resolves somewhere we must not go."""
    problem = address_problem(address)
    if problem and name.lower().rstrip(".") not in allowed_private_hosts():
        raise DNSLookupError(f"{name} resolved to {problem} address {address}: refused")
    return address


class GuardedResolver(CachingThreadedResolver):
    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> Deferred[Any]:  # noqa: N802
        deferred = super().getHostByName(name, timeout)
        deferred.addCallback(check_resolved, name)
        return deferred
