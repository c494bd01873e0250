"""Connections and the process-wide pool.

The URL comes from settings; with none set, the embedded PostgreSQL in the data directory
is started (or reused) and its URL used, so a newcomer needs no server of their own.
"""

from __future__ import annotations

import threading

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from artwatch.settings import Settings, SettingsError, get_settings, redact_url

_pool_lock = threading.Lock()
_pools: dict[str, ConnectionPool] = {}


def database_url(settings: Settings | None = None) -> str:
    """The PostgreSQL URL to use: the configured one, else the embedded server's."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    from artwatch.services.postgres import EmbeddedPostgres

    return EmbeddedPostgres(settings.services_dir / "postgres").ensure_running()


CONNECT_TIMEOUT_S = 10


class DatabaseUnreachable(SettingsError):
    """PostgreSQL cannot be reached; the message names the setting (or the embedded server)."""


def unreachable(url: str, exc: BaseException) -> DatabaseUnreachable:
    """The one-line error for a failed connection to `url`."""
    settings = get_settings()
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    if settings.database_url and url == settings.database_url:
        where = f"ARTWATCH_DATABASE_URL ({redact_url(url)})"
    else:
        where = f"PostgreSQL at {redact_url(url)}"
    return DatabaseUnreachable(f"{where}: cannot connect: {reason}")


def connect(url: str | None = None, **kwargs: object) -> psycopg.Connection:
    """A new connection with dict rows (caller closes it, e.g. `with connect() as conn`).

    Raises DatabaseUnreachable (naming ARTWATCH_DATABASE_URL) when the server cannot be
    reached within CONNECT_TIMEOUT_S unless the URL sets its own connect_timeout.
    """
    url = url or database_url()
    if "connect_timeout" not in url:
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    kwargs.setdefault("row_factory", dict_row)
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise unreachable(url, exc) from exc


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
