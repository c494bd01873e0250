"""Auction-house sources: the `sources` rows that say what to crawl, how, and when.

A source names its spider (one per site style, or `generic` driven by selectors), start
URLs, a cron schedule, whether it is enabled, whether it may live on a private network
(only the tests' local auction house should), and per-source settings: politeness
overrides, incremental crawling, selectors for the generic spider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from croniter import croniter
from psycopg.types.json import Jsonb

from artwatch.urlsafety import UnsafeURL, check_url, netloc_of

SPIDERS = ("html_lots", "api_lots", "js_lots", "generic")

# Politeness knobs a source may override, mapped to Scrapy settings.
POLITENESS_SETTINGS = {
    "download_delay": "DOWNLOAD_DELAY",
    "concurrency": "CONCURRENT_REQUESTS_PER_DOMAIN",
    "autothrottle": "AUTOTHROTTLE_ENABLED",
    "autothrottle_target": "AUTOTHROTTLE_TARGET_CONCURRENCY",
    "obey_robots": "ROBOTSTXT_OBEY",
    "retry_after_max": "ARTWATCH_RETRY_AFTER_MAX",
}


class SourceError(ValueError):
    """A source definition that cannot be used; the message says which part is wrong."""


@dataclass(frozen=True)
class Source:
    id: int
    name: str
    spider: str
    start_urls: list[str]
    schedule: str
    enabled: bool
    allow_private: bool
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def netlocs(self) -> set[str]:
        """`host:port` of every start URL: the hosts this source is about."""
        return {n for n in (netloc_of(u) for u in self.start_urls) if n}

    @property
    def private_allowed(self) -> set[str]:
        """Netlocs whose private addresses the URL guard accepts for this source."""
        return self.netlocs if self.allow_private else set()

    @property
    def incremental(self) -> bool:
        return bool(self.settings.get("incremental", True))

    def scrapy_settings(self) -> dict[str, Any]:
        """Scrapy settings from the source's politeness overrides (passed as `-s`)."""
        politeness = self.settings.get("politeness", {})
        out = {}
        for key, value in politeness.items():
            if key not in POLITENESS_SETTINGS:
                raise SourceError(f"source {self.name}: unknown politeness setting {key!r}")
            out[POLITENESS_SETTINGS[key]] = value
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Source:
        return cls(
            id=int(row["id"]),
            name=row["name"],
            spider=row["spider"],
            start_urls=list(row["start_urls"]),
            schedule=row["schedule"],
            enabled=bool(row["enabled"]),
            allow_private=bool(row["allow_private"]),
            settings=dict(row["settings"] or {}),
        )


def validate(
    name: str, spider: str, start_urls: list[str], schedule: str, allow_private: bool,
    settings: dict[str, Any],
) -> None:
    """Refuse a definition that would fail later (bad spider, cron, URL or setting)."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise SourceError(f"source name {name!r}: use letters, digits, - and _")
    if spider not in SPIDERS:
        raise SourceError(f"spider {spider!r}: must be one of {', '.join(SPIDERS)}")
    if not croniter.is_valid(schedule):
        raise SourceError(f"schedule {schedule!r} is not a cron expression")
    if not start_urls:
        raise SourceError("at least one start URL is needed")
    netlocs = {netloc_of(u) for u in start_urls}
    for url in start_urls:
        try:
            check_url(url, allow_private=netlocs if allow_private else ())
        except UnsafeURL as exc:
            raise SourceError(f"start URL {url}: {exc.reason}: {exc.detail}") from None
    if spider == "generic" and not settings.get("selectors"):
        raise SourceError("the generic spider needs settings.selectors")
    unknown = set(settings.get("politeness", {})) - set(POLITENESS_SETTINGS)
    if unknown:
        raise SourceError(f"unknown politeness settings: {', '.join(sorted(unknown))}")


def add_source(
    conn: psycopg.Connection,
    name: str,
    spider: str,
    start_urls: list[str],
    *,
    schedule: str = "0 */6 * * *",
    enabled: bool = True,
    allow_private: bool = False,
    settings: dict[str, Any] | None = None,
) -> Source:
    """Create or replace a source by name (idempotent)."""
    settings = settings or {}
    validate(name, spider, start_urls, schedule, allow_private, settings)
    row = conn.execute(
        """
        INSERT INTO sources (name, spider, start_urls, schedule, enabled, allow_private, settings)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (name) DO UPDATE SET spider = EXCLUDED.spider,
            start_urls = EXCLUDED.start_urls, schedule = EXCLUDED.schedule,
            enabled = EXCLUDED.enabled, allow_private = EXCLUDED.allow_private,
            settings = EXCLUDED.settings, updated_at = now()
        RETURNING *
        """,
        (name, spider, start_urls, schedule, enabled, allow_private, Jsonb(settings)),
    ).fetchone()
    return Source.from_row(row)


def get_source(conn: psycopg.Connection, name: str) -> Source:
    row = conn.execute("SELECT * FROM sources WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise SourceError(f"no source named {name!r} (see `artwatch sources list`)")
    return Source.from_row(row)


def list_sources(conn: psycopg.Connection) -> list[Source]:
    return [Source.from_row(r) for r in conn.execute("SELECT * FROM sources ORDER BY name")]


def set_enabled(conn: psycopg.Connection, name: str, enabled: bool) -> Source:
    row = conn.execute(
        "UPDATE sources SET enabled = %s, updated_at = now() WHERE name = %s RETURNING *",
        (enabled, name),
    ).fetchone()
    if row is None:
        raise SourceError(f"no source named {name!r}")
    return Source.from_row(row)
