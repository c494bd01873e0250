"""Emptying the per-run test database (every table but the migration history)."""

from __future__ import annotations

import psycopg


def truncate_all(db_url: str) -> None:
    """All rows gone and ids restarted, schema kept."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_migrations'"
            )
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
