"""Reading and clearing the test Redis's Celery queues (shared by the stage tests)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import redis


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
