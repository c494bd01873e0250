"""Downloader middlewares: the URL guard on every fetch, and Retry-After on 429.

`UrlSafetyMiddleware` sits first in the chain, so pages, robots.txt, photo downloads (the
media pipeline downloads through the same chain) and every redirect hop (a redirect is a
new request that comes through again) are checked before a connection is opened. The
browser's own sub-requests for the JavaScript house are checked by
`playwright_abort_request`.
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from twisted.internet.task import deferLater

from artwatch.urlsafety import UnsafeURL, check_url, netloc_of

logger = logging.getLogger(__name__)

# Netlocs the running spider's source allows on private addresses (one spider per process);
# set by the spider so the browser-request filter, which has no spider, can use it.
BROWSER_ALLOW_PRIVATE: set[str] = set()

# Crawl stat: the first redirect hop the guard refused, in words (a resubmission that ends
# there records it as its error instead of "no lot found").
REFUSED_REDIRECT_STAT = "artwatch/refused_redirect"


class UnsafeRequest(IgnoreRequest):
    """A request refused by the URL guard (the reason ends up on the listing photo row)."""

    def __init__(self, error: UnsafeURL) -> None:
        super().__init__(f"unsafe_url:{error.reason}: {error.detail}")
        self.error = error


class UrlSafetyMiddleware:
    """Refuse requests to non-http(s) URLs and to non-public addresses (SSRF guard)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self._cache: dict[str, tuple[float, UnsafeURL | None]] = {}
        self.ttl = 300.0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> UrlSafetyMiddleware:
        return cls(crawler)

    def _verdict(self, url: str, allowed: set[str]) -> UnsafeURL | None:
        # Cache per scheme + netloc: the answer depends on the host, not on the path.
        key = url.split(":", 1)[0] + "|" + netloc_of(url)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and now - cached[0] < self.ttl and cached[1] is None:
            return None
        try:
            check_url(url, allow_private=allowed)
        except UnsafeURL as exc:
            return exc
        self._cache[key] = (now, None)
        return None

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        spider = spider or self.crawler.spider
        allowed = set(getattr(spider, "allow_private_netlocs", ()) or ())
        error = self._verdict(request.url, allowed)
        if error is not None:
            self.stats.inc_value("artwatch/unsafe_url_refused")
            self.stats.inc_value(f"artwatch/unsafe_url_refused/{error.reason}")
            hops = request.meta.get("redirect_urls") or []
            if hops and self.stats.get_value(REFUSED_REDIRECT_STAT) is None:
                self.stats.set_value(
                    REFUSED_REDIRECT_STAT,
                    f"unsafe_redirect: redirect hop {len(hops)} from {hops[-1]} to "
                    f"{request.url} refused: {error.reason}: {error.detail}",
                )
            logger.warning("refused %s: %s", request.url, error)
            raise UnsafeRequest(error)
        return None


def _retry_after_seconds(value: bytes | None, default: float) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return default
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


class RetryAfterMiddleware:
    """On 429, pause that site for as long as it asks, then retry the request.

    The pause is per downloader slot (per domain): requests to the site wait in
    `process_request` until the moment the server named, so one 429 slows the whole site,
    not only the request that got it. An ask longer than ARTWATCH_RETRY_AFTER_MAX, or more
    than ARTWATCH_RETRY_AFTER_TIMES 429s for one request, lets the 429 through as a failure.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.max_wait = crawler.settings.getfloat("ARTWATCH_RETRY_AFTER_MAX", 120.0)
        self.max_times = crawler.settings.getint("ARTWATCH_RETRY_AFTER_TIMES", 5)
        self.blocked_until: dict[str, float] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryAfterMiddleware:
        return cls(crawler)

    @staticmethod
    def _slot(request: Request) -> str:
        return request.meta.get("download_slot") or netloc_of(request.url)

    def process_request(self, request: Request, spider: Spider | None = None) -> Any:
        """None at once (the common case), or a Deferred that fires when the pause is over."""
        until = self.blocked_until.get(self._slot(request), 0.0)
        wait = until - time.monotonic()
        if wait <= 0:
            return None
        from twisted.internet import reactor  # the running one (never install at import)

        self.stats.inc_value("artwatch/retry_after_waits")
        return deferLater(reactor, wait, lambda: None)

    def process_response(
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response:
        if response.status != 429:
            return response
        self.stats.inc_value("artwatch/http_429")
        tries = int(request.meta.get("retry_after_times", 0))
        delay = _retry_after_seconds(response.headers.get(b"Retry-After"), 1.0)
        if tries >= self.max_times or delay > self.max_wait:
            self.stats.inc_value("artwatch/http_429_gave_up")
            return response
        slot = self._slot(request)
        self.blocked_until[slot] = max(
            self.blocked_until.get(slot, 0.0), time.monotonic() + delay
        )
        logger.info("429 from %s: waiting %.1fs as asked", request.url, delay)
        retry = request.replace(dont_filter=True)
        retry.meta["retry_after_times"] = tries + 1
        return retry


def playwright_abort_request(request: Any) -> bool:
    """Browser sub-requests to skip: unsafe URLs (SSRF guard) and pixels we never look at."""
    if request.resource_type in ("image", "media", "font"):
        return True
    try:
        check_url(request.url, allow_private=BROWSER_ALLOW_PRIVATE)
    except UnsafeURL as exc:
        logger.warning("browser request refused: %s", exc)
        return True
    return False
