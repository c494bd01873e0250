"""Connections and the process-wide pool.

The URL comes from settings; with none set, the embedded PostgreSQL in the data directory
is started (or reused) and its URL used, so a newcomer needs no server of their own.
"""

from __future__ import annotations

import threading

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from artwatch.settings import Settings, get_settings

_pool_lock = threading.Lock()
_pools: dict[str, ConnectionPool] = {}


def database_url(settings: Settings | None = None) -> str:
    """The PostgreSQL URL to use: the configured one, else the embedded server's."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    from artwatch.services.postgres import EmbeddedPostgres

    return EmbeddedPostgres(settings.services_dir / "postgres").ensure_running()


def connect(url: str | None = None, **kwargs: object) -> psycopg.Connection:
    """A new connection with dict rows (caller closes it, e.g. `with connect() as conn`)."""
    return psycopg.connect(url or database_url(), row_factory=dict_row, **kwargs)


def get_pool(url: str | None = None, settings: Settings | None = None) -> ConnectionPool:
    """One pool per URL per process, opened on first use."""
    settings = settings or get_settings()
    url = url or database_url(settings)
    with _pool_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=settings.db_pool_max,
                kwargs={"row_factory": dict_row},
                open=True,
                name="artwatch",
            )
            _pools[url] = pool
        return pool


async def open_async_pool(
    url: str | None = None, settings: Settings | None = None
) -> AsyncConnectionPool:
    """An open asyncio pool for a process whose work runs on one event loop (the crawler).

    Not cached: it belongs to the running loop; the caller closes it (`await pool.close()`).
    Database waits then never block the loop and no threads are involved, whose hand-offs
    of the interpreter lock were the crawl's largest overhead (crawler/README.md).
    """
    settings = settings or get_settings()
    pool = AsyncConnectionPool(
        url or database_url(settings),
        min_size=1,
        max_size=settings.db_pool_max,
        kwargs={"row_factory": dict_row},
        open=False,
        name="artwatch-async",
    )
    await pool.open()
    return pool


def close_pools() -> None:
    """Close every pool this process opened (tests, clean shutdown)."""
    with _pool_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()
