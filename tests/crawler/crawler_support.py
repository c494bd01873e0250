"""Helpers for the crawler tests: registering houses as sources, reading the Celery queue."""

from __future__ import annotations

from typing import Any

from queue_support import drop_queued, queue_of, queued  # noqa: F401  (used by the tests)

FAST = {"politeness": {"download_delay": 0, "autothrottle": False, "concurrency": 8}}


def register(house: Any, name: str | None = None, spider: str | None = None,
             settings: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Add a house as a source (loopback allowed for its own host:port only)."""
    from artwatch.db import connect
    from crawler.sources import add_source

    with connect(autocommit=True) as conn:
        return add_source(
            conn, name or house.config.name, spider or house.config.spider,
            [house.start_url], allow_private=True,
            settings={**FAST, **(settings or {})}, **kwargs,
        )


def rows(sql: str, *params: Any) -> list[dict[str, Any]]:
    from artwatch.db import connect

    with connect() as conn:
        return conn.execute(sql, params).fetchall()


def count(table: str) -> int:
    return int(rows(f"SELECT count(*) AS n FROM {table}")[0]["n"])
