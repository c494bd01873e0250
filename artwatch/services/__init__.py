"""Embedded PostgreSQL and Redis, so artwatch runs on a laptop with nothing installed.

With `ARTWATCH_DATABASE_URL` / `ARTWATCH_REDIS_URL` set, the real servers are used and
nothing here starts.
"""

from artwatch.services.postgres import EmbeddedPostgres
from artwatch.services.redis import EmbeddedRedis, redis_url

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "redis_url"]
