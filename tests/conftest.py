"""Shared fixtures: every test run gets its own PostgreSQL database, Redis db and data dir.

The real servers on this machine are used (PostgreSQL on 127.0.0.1:5432, Redis on
127.0.0.1:6379); `ARTWATCH_TEST_ADMIN_URL` / `ARTWATCH_TEST_REDIS` point elsewhere. Databases
come from `artwatch.db.scratch`, as the benchmarks' do.
The environment is set before any artwatch module reads its settings.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from dbreset import truncate_all

from artwatch.db.scratch import create_database, drop_database, scratch_database, unique_name

REDIS_BASE = os.environ.get("ARTWATCH_TEST_REDIS", "redis://127.0.0.1:6379")
TEST_DB = unique_name("artwatch_test")
CLAIM_TTL_S = 4 * 3600  # a claim outlives any test run; a killed run frees its db eventually
DATA_DIR = Path(tempfile.mkdtemp(prefix="artwatch-test-"))
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COIL100 = SHARED / "data" / "coil100"


def claim_redis_db() -> int:
    """A Redis db (1-15) no other running test session holds, claimed in db 0.

    Test runs in parallel (several checkouts on one machine) must not flush each other's
    Celery queues; a random pick collided about one run in fifteen.
    """
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0")
    token = f"{os.getpid()}:{TEST_DB}"
    candidates = list(range(1, 16))
    secrets.SystemRandom().shuffle(candidates)
    for number in candidates:
        if admin.set(f"artwatch-test-claim:{number}", token, nx=True, ex=CLAIM_TTL_S):
            return number
    raise RuntimeError("all 15 test Redis dbs are claimed by running test sessions")


TEST_REDIS_DB = 0  # set by pytest_configure


def pytest_configure(config: pytest.Config) -> None:
    global TEST_REDIS_DB
    TEST_REDIS_DB = claim_redis_db()
    os.environ["ARTWATCH_DATABASE_URL"] = create_database(TEST_DB)
    os.environ["ARTWATCH_REDIS_URL"] = f"{REDIS_BASE}/{TEST_REDIS_DB}"
    os.environ["ARTWATCH_DATA_DIR"] = str(DATA_DIR)
    os.environ.pop("ARTWATCH_CONFIG", None)
    redis.Redis.from_url(os.environ["ARTWATCH_REDIS_URL"]).flushdb()
    from artwatch.db import migrate

    migrate(os.environ["ARTWATCH_DATABASE_URL"])


def pytest_unconfigure(config: pytest.Config) -> None:
    from artwatch.db.connection import close_pools

    close_pools()
    drop_database(TEST_DB)
    redis.Redis.from_url(f"{REDIS_BASE}/{TEST_REDIS_DB}").flushdb()
    redis.Redis.from_url(f"{REDIS_BASE}/0").delete(f"artwatch-test-claim:{TEST_REDIS_DB}")
    shutil.rmtree(DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def db_url() -> str:
    return os.environ["ARTWATCH_DATABASE_URL"]


@pytest.fixture
def clean_db(db_url: str) -> Iterator[str]:
    """An emptied schema (all rows gone, ids restarted) for tests that count rows."""
    truncate_all(db_url)
    yield db_url


@pytest.fixture
def conn(clean_db: str) -> Iterator[psycopg.Connection]:
    from artwatch.db import connect

    with connect(clean_db, autocommit=True) as connection:
        yield connection


@pytest.fixture
def settings():
    from artwatch.settings import get_settings

    return get_settings()


@pytest.fixture
def image_store(tmp_path: Path):
    from artwatch.images import ImageStore

    return ImageStore(tmp_path / "images", max_bytes=5 * 1024 * 1024, max_pixels=20_000_000)


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty database with no schema at all (for migration tests)."""
    with scratch_database(f"{TEST_DB}_m") as url:
        yield url
