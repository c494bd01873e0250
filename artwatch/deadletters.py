"""Poison messages: logged, counted and moved aside, never a crash and never a loop.

A queue entry a worker cannot use (not JSON, JSON that is not a message, an unknown task, a
body that does not decode, a task whose arguments are not what its contract says) is taken
off its queue and kept, with the reason, in one Redis list (`DEAD_LETTERS`, newest first,
capped at `KEEP` entries) beside a counter per reason (`DEAD_LETTER_COUNTS`, a hash), so an
operator can read what arrived and `artwatch status` can show how many. Recording never
raises: a broker that is down at that moment costs the copy, not the worker; the log line
is written first either way.

Work a poison message might have stood for is not lost with it: PostgreSQL is the truth, and
the matcher's sweeper re-queues any stored listing photo that has no prediction.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

DEAD_LETTERS = "artwatch.dead-letters"
DEAD_LETTER_COUNTS = "artwatch.dead-letters.counts"
KEEP = 10_000
MAX_RAW_CHARS = 4_000

_client: dict[str, Any] = {}


def _redis() -> Any:
    """A Redis client on the broker (created once per process)."""
    if "client" not in _client:
        import redis

        from artwatch.services.redis import redis_url

        _client["client"] = redis.Redis.from_url(redis_url(), socket_timeout=5,
                                                 socket_connect_timeout=5)
    return _client["client"]


def _text(raw: Any) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        try:
            raw = json.dumps(raw, default=repr)
        except (TypeError, ValueError):
            raw = repr(raw)
    return raw[:MAX_RAW_CHARS]


def record(reason: str, queue: str | None, raw: Any, detail: str = "",
           client: Any = None) -> None:
    """Log one poison message and keep it, with `reason` (a short code), in the dead letters."""
    text = _text(raw)
    log.error("poison message on %s moved aside (%s%s): %.300s", queue or "?", reason,
              f": {detail}" if detail else "", text)
    entry = json.dumps({"at": time.time(), "queue": queue, "reason": reason,
                        "detail": detail[:500], "raw": text})
    try:
        pipe = (client or _redis()).pipeline()
        pipe.lpush(DEAD_LETTERS, entry).ltrim(DEAD_LETTERS, 0, KEEP - 1)
        pipe.hincrby(DEAD_LETTER_COUNTS, reason, 1)
        pipe.execute()
    except Exception as exc:  # the log line above is the record then
        log.error("could not keep the dead letter in Redis: %s", exc)


def counts(client: Any = None) -> dict[str, int]:
    """Poison messages seen per reason (since the broker's data began)."""
    raw = (client or _redis()).hgetall(DEAD_LETTER_COUNTS)
    return {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in raw.items()}


def entries(limit: int = 100, client: Any = None) -> list[dict[str, Any]]:
    """The newest dead letters: {at, queue, reason, detail, raw}."""
    return [json.loads(e) for e in (client or _redis()).lrange(DEAD_LETTERS, 0, limit - 1)]
