"""Versioned SQL migrations, applied under a PostgreSQL advisory lock.

Files `NNNN_name.sql` in `artwatch/db/migrations/` are applied in order, each in its own
transaction, and recorded in `schema_migrations`. The whole run holds a session-level
advisory lock, so two processes starting together apply each file exactly once; a re-run
is a no-op. An applied file whose text changed is refused, since a database whose history
differs from the code is a bug to look at, not to paper over.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg.rows import tuple_row

from artwatch.db.connection import connect

# Any fixed 64-bit number; it only has to be the same in every artwatch process.
MIGRATION_LOCK_KEY = 0x61727477_61746368  # "artwatch"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database's migration history disagrees with the code."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The migrations shipped with this version of artwatch, in order."""
    found = []
    for entry in resources.files("artwatch.db").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            checksum   char(64) NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def applied_migrations(conn: psycopg.Connection) -> dict[int, str]:
    """version -> checksum of what the database has applied (empty if never migrated)."""
    cur = conn.cursor(row_factory=tuple_row)  # whatever row factory the caller's conn has
    exists = cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = cur.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(r[0]): str(r[1]) for r in rows}


def migrate(url: str) -> list[Migration]:
    """Apply pending migrations; return those this call applied."""
    applied_now: list[Migration] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            _ensure_table(conn)
            done = applied_migrations(conn)
            for migration in available_migrations():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} was changed "
                            "after it was applied"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


def pending_migrations(url: str) -> list[Migration]:
    """Migrations the database at `url` has not applied yet."""
    with connect(url) as conn:
        done = applied_migrations(conn)
    return [m for m in available_migrations() if m.version not in done]
