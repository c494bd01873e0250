"""What every artwatch spider shares: its source row, run arguments, incremental paging.

Arguments (all strings, as `scrapy crawl -a` passes them):
  source    the source name (required)
  url       crawl only this lot URL now (manual resubmission)
  crawl_id  the `crawls` row this run reports into (the runner creates it)
  full      "1": ignore incremental paging, walk every page
  force     "1": send the photos to the matcher even if they were sent before
  shard     "i/n": this process takes the lots whose key hashes to i of n (list pages are
            read by every shard; see crawler.runner for crawls split over processes)
"""

from __future__ import annotations

import zlib
from typing import Any

import scrapy
from scrapy.exceptions import CloseSpider

from artwatch.browser import browser_problem
from artwatch.db import connect
from artwatch.db.retry import DB_UNAVAILABLE
from crawler import middlewares
from crawler.extensions import CLOSE_DETAIL
from crawler.listings import seen_external_ids, seen_urls
from crawler.sources import Source, get_source


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class SourceSpider(scrapy.Spider):
    """Base class: loads the source and exposes the run's options to pipelines."""

    source: Source

    def __init__(
        self,
        source: str | None = None,
        url: str | None = None,
        crawl_id: str | None = None,
        full: str = "0",
        force: str = "0",
        shard: str = "0/1",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not source:
            raise ValueError(f"spider {self.name} needs -a source=<name>")
        with connect() as conn:
            self.source = get_source(conn, source)
        if self.source.spider != self.name:
            raise ValueError(
                f"source {source} uses spider {self.source.spider}, not {self.name}"
            )
        self.lot_url = url or None
        self.crawl_id = int(crawl_id) if crawl_id else None
        self.force = truthy(force)
        index, _, count = shard.partition("/")
        self.shard_index, self.shard_count = int(index), max(1, int(count or 1))
        if not 0 <= self.shard_index < self.shard_count:
            raise ValueError(f"shard {shard!r}: expected i/n with 0 <= i < n")
        self.incremental = self.source.incremental and not truthy(full) and not self.lot_url
        self.allow_private_netlocs = self.source.private_allowed
        middlewares.BROWSER_ALLOW_PRIVATE.update(self.allow_private_netlocs)
        self.settings_json: dict[str, Any] = self.source.settings
        self._conn: Any = None

    @property
    def uses_browser(self) -> bool:
        """Whether pages are rendered in Chromium (scrapy-playwright)."""
        return False

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = connect(autocommit=True)
        return self._conn

    def closed(self, reason: str) -> None:
        if self._conn is not None:
            self._conn.close()

    def mine(self, key: str) -> bool:
        """Whether this shard crawls the lot with this URL or id (always, unsharded)."""
        if self.shard_count == 1 or self.lot_url:
            return True
        return zlib.crc32(key.encode()) % self.shard_count == self.shard_index

    def _stop_after(self) -> int:
        return int(
            self.settings_json.get(
                "incremental_stop_after",
                self.crawler.settings.getint("ARTWATCH_INCREMENTAL_STOP_AFTER", 3),
            )
        )

    def keep_paging(self, lot_urls: list[str] = (), external_ids: list[str] = ()) -> bool:
        """False once an incremental crawl reaches a page of lots it has already seen."""
        if not self.incremental:
            return True
        try:
            seen = len(seen_urls(self.conn, self.source.id, list(lot_urls)))
            seen += len(seen_external_ids(self.conn, self.source.id, list(external_ids)))
        except DB_UNAVAILABLE as exc:  # cannot tell: page on (a later page may tell)
            self.logger.warning("incremental check unavailable (%s); paging on", exc)
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return True
        if seen >= min(self._stop_after(), max(len(lot_urls) + len(external_ids), 1)):
            self.crawler.stats.inc_value("artwatch/incremental_stops")
            self.logger.info("incremental crawl: %d seen lots on this page, not paging on", seen)
            return False
        return True

    async def start(self):  # type: ignore[override]
        if self.uses_browser and (problem := browser_problem()):
            # One clear failure for the crawl, not a download error on every page.
            self.logger.error(problem)
            self.crawler.stats.set_value(CLOSE_DETAIL, problem)
            raise CloseSpider("browser_unavailable")
        if self.lot_url:
            for request in self.lot_requests(self.lot_url):
                yield request
        else:
            for url in self.source.start_urls:
                yield self.list_request(url)

    def list_request(self, url: str) -> scrapy.Request:
        raise NotImplementedError

    def lot_requests(self, url: str) -> list[scrapy.Request]:
        raise NotImplementedError
