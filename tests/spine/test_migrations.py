"""Migrations on a real PostgreSQL: empty database, re-run, two processes at once."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from artwatch.db.migrate import MigrationError, available_migrations, migrate

EXPECTED_TABLES = {
    "images", "objects", "object_images", "bundles", "embeddings", "sources", "crawls",
    "listings", "listing_images", "predictions", "matches", "reviewers", "alerts",
    "alert_items", "reviews", "submissions", "schema_migrations",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        return {r[0] for r in rows}


def test_apply_on_empty_then_rerun_is_noop(fresh_database: str) -> None:
    applied = migrate(fresh_database)
    assert [m.version for m in applied] == [m.version for m in available_migrations()]
    assert _tables(fresh_database) >= EXPECTED_TABLES
    assert migrate(fresh_database) == []
    with psycopg.connect(fresh_database) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert count == len(available_migrations())


def test_two_processes_at_once_apply_each_migration_once(fresh_database: str) -> None:
    code = (
        "import sys; from artwatch.db.migrate import migrate; "
        "print(len(migrate(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, fresh_database], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    counts = sorted(int(out.strip()) for out, _ in outputs)
    assert counts == [0, len(available_migrations())]
    assert _tables(fresh_database) >= EXPECTED_TABLES


def test_changed_applied_migration_is_refused(fresh_database: str) -> None:
    migrate(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(fresh_database)


def test_idempotent_keys_exist(db_url: str) -> None:
    """The unique keys the stages rely on for idempotent writes."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE "
            "'CREATE UNIQUE%'"
        ).fetchall()
    defs = "\n".join(r[0] for r in rows)
    assert "images USING btree (sha256)" in defs
    assert "listings USING btree (source_id, external_id)" in defs
    assert "predictions USING btree (image_id, bundle_id)" in defs
    assert "matches USING btree (listing_id, object_id, COALESCE(bundle_id" in defs
    assert "alert_items USING btree (match_id, reviewer_id)" in defs


def test_a_scratch_database_is_dropped_even_when_its_block_fails() -> None:
    """Benchmarks and the suite make their databases with `artwatch.db.scratch`; a run that
    raises must not leave its database on the server."""
    from artwatch.db.scratch import admin_url, scratch_database

    def exists(name: str) -> bool:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (name,)).fetchone() is not None

    with pytest.raises(RuntimeError, match="benchmark failed"), \
            scratch_database("artwatch_scratch") as url:
        name = url.rsplit("/", 1)[1]
        assert exists(name) and _tables(url) == set()  # new and empty
        held = psycopg.connect(url)  # a connection the block forgot to close
        raise RuntimeError("benchmark failed")
    held.close()
    assert not exists(name)  # dropped with the connection still open (FORCE)
