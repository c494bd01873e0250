"""Throw-away PostgreSQL databases for the test suite and the benchmarks.

Tests and benchmarks run against the real server (never a mock), each in a database of its
own so that runs beside each other, or beside a deployment on the same server, never see one
another's rows. The server is `ARTWATCH_TEST_ADMIN_URL` (default: the local server's `test`
database, trust authentication), a URL whose user may create and drop databases.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

ADMIN_ENV = "ARTWATCH_TEST_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    """The server throw-away databases are made on (`ARTWATCH_TEST_ADMIN_URL`)."""
    return os.environ.get(ADMIN_ENV, DEFAULT_ADMIN_URL)


def url_for(name: str, admin: str | None = None) -> str:
    """The URL of database `name` on the admin URL's server, with its user and options."""
    return urlunsplit(urlsplit(admin or admin_url())._replace(path=f"/{name}"))


def unique_name(prefix: str) -> str:
    """`<prefix>_<pid>_<6 hex>`: unique across processes and runs on one server."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


def create_database(name: str, admin: str | None = None, template: str | None = None) -> str:
    """Create the database `name`, empty or a copy of database `template` (one of that name
    left by a killed run is dropped first); returns its URL. Raises psycopg.Error when the
    server refuses."""
    with psycopg.connect(admin or admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"'
                     + (f' TEMPLATE "{template}"' if template else ""))
    return url_for(name, admin)


def drop_database(name: str, admin: str | None = None) -> None:
    """Drop database `name`, closing whatever connections still use it."""
    with psycopg.connect(admin or admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(prefix: str = "artwatch_bench", admin: str | None = None
                     ) -> Iterator[str]:
    """A new empty database (no schema) for the `with` block; yields its URL and drops it
    afterwards, also when the block raises. Close pools on it before the block ends
    (`artwatch.db.connection.close_pools`): the drop ends their connections."""
    name = unique_name(prefix)
    url = create_database(name, admin)
    try:
        yield url
    finally:
        drop_database(name, admin)
