"""CrawlRecorder: one `crawls` row per run, holding Scrapy's stats when the spider closes.

The runner creates the row before starting Scrapy (so a crash still leaves a failed row);
a crawl started by hand with plain `scrapy crawl` gets a row here instead.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb
from scrapy import signals
from scrapy.crawler import Crawler

from artwatch.db import connect
from artwatch.db.retry import db_retrying
from artwatch.settings import get_settings

logger = logging.getLogger(__name__)

CLOSE_DETAIL = "artwatch/close_detail"  # stat a spider sets to explain why it closed


def jsonable_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Scrapy's stats with datetimes and other non-JSON values made JSON-friendly."""
    out: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, dt.datetime | dt.date):
            out[key] = value.isoformat()
        elif isinstance(value, dt.timedelta):
            out[key] = value.total_seconds()
        elif isinstance(value, Decimal):
            out[key] = float(value)
        elif isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
        else:
            out[key] = str(value)
    return out


class CrawlRecorder:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlRecorder:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        if getattr(spider, "crawl_id", None) is None and getattr(spider, "source", None):
            with connect(autocommit=True) as conn:
                row = conn.execute(
                    "INSERT INTO crawls (source_id, trigger) VALUES (%s, 'manual') RETURNING id",
                    (spider.source.id,),
                ).fetchone()
            spider.crawl_id = int(row["id"])

    def spider_closed(self, spider: Any, reason: str) -> None:
        crawl_id = getattr(spider, "crawl_id", None)
        if crawl_id is None:
            return
        stats = jsonable_stats(self.crawler.stats.get_stats())
        stats["finish_reason"] = reason
        status = "finished" if reason == "finished" else "failed"
        detail = stats.get(CLOSE_DETAIL)  # what a spider said when it closed itself
        error = f"{reason}: {detail}" if detail else reason
        if getattr(spider, "shard_count", 1) > 1:
            # One of several processes of this crawl: file its stats under its shard; the
            # runner merges them and closes the row when every shard has ended.
            def file_shard() -> None:
                with connect(autocommit=True) as conn:
                    conn.execute(
                        "UPDATE crawls SET stats = jsonb_set(stats, '{shards}', "
                        "coalesce(stats->'shards', '{}'::jsonb) || jsonb_build_object(%s::text,"
                        " %s::jsonb)) WHERE id = %s",
                        (spider.shard_index, Jsonb(stats), crawl_id),
                    )

            db_retrying(get_settings().db_retry_s, f"closing crawl {crawl_id}")(file_shard)
            return
        def finish() -> None:
            with connect(autocommit=True) as conn:
                conn.execute(
                    "UPDATE crawls SET status = %s, finished_at = now(), stats = %s, "
                    "error = %s WHERE id = %s",
                    (status, Jsonb(stats), None if status == "finished" else error, crawl_id),
                )

        # The crawl's outcome must not be lost to a database restarting as it closes.
        db_retrying(get_settings().db_retry_s, f"closing crawl {crawl_id}")(finish)
        logger.info("crawl %s %s", crawl_id, status)


class GcTuning:
    """Freeze the start-up heap and collect young objects less often during the crawl.

    A crawl process holds a large, long-lived heap (Scrapy, Twisted, lxml, Celery, psycopg,
    the scheduler's queue), and CPython's cyclic GC rescans it: measured on the local house
    at 1000 lots, 25% of the crawl process's CPU (1.96 s of 7.7 s) was garbage collection.
    Objects alive when the spider opens are moved out of the collector's sight
    (`gc.freeze`), and the first-generation threshold is raised so short-lived per-request
    objects die before they are scanned. Memory is still reclaimed (reference counting,
    and cycles by the collector, only less often). ARTWATCH_GC_THRESHOLD = 0 turns it off.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.threshold = crawler.settings.getint("ARTWATCH_GC_THRESHOLD", 50_000)
        if self.threshold > 0:
            crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> GcTuning:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        gc.freeze()  # no full collection first: it would cost ~0.4 s of the crawl
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(self.threshold, gen1, gen2)
