"""Helpers for the crawler tests: registering houses as sources, reading the Celery queue."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import redis

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


def queue_of(task: str) -> str:
    """The Redis list a task's messages go to (its route, else the default queue)."""
    from artwatch.queue import app

    route = (app.conf.task_routes or {}).get(task) or {}
    return route.get("queue") or app.conf.task_default_queue


def queued(task: str) -> list[tuple[list[Any], dict[str, Any]]]:
    """(args, kwargs) of every message for `task` waiting in its Celery queue in Redis."""
    client = redis.Redis.from_url(os.environ["ARTWATCH_REDIS_URL"])
    out = []
    for raw in client.lrange(queue_of(task), 0, -1):
        message = json.loads(raw)
        if message.get("headers", {}).get("task") != task:
            continue
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        out.append((args, kwargs))
    return out


def drop_queued(task: str) -> None:
    """Remove this task's messages from the queue (leaves other stages' messages alone)."""
    client = redis.Redis.from_url(os.environ["ARTWATCH_REDIS_URL"])
    queue = queue_of(task)
    for raw in client.lrange(queue, 0, -1):
        if json.loads(raw).get("headers", {}).get("task") == task:
            client.lrem(queue, 0, raw)


def rows(sql: str, *params: Any) -> list[dict[str, Any]]:
    from artwatch.db import connect

    with connect() as conn:
        return conn.execute(sql, params).fetchall()


def count(table: str) -> int:
    return int(rows(f"SELECT count(*) AS n FROM {table}")[0]["n"])
