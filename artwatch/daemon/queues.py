"""How much work waits on the broker: messages in each Celery queue, and unacknowledged ones.

Read straight from Redis the way kombu lays it out: a queue is a list named after it (plus
one list per priority step when messages carry priorities), and messages delivered but not
yet acknowledged (acks_late: in a worker's hands) sit in the `unacked` hash.
"""

from __future__ import annotations

import redis

QUEUES = ("artwatch", "matcher")
PRIORITY_SEP = "\x06\x16"  # kombu's separator for priority sub-queues
UNACKED = "unacked"


def queue_depths(url: str) -> dict[str, int]:
    """{"artwatch": n, "matcher": n, "unacked": n}; raises redis.RedisError when unreachable."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    depths = {}
    for queue in QUEUES:
        keys = [queue, *(f"{queue}{PRIORITY_SEP}{p}" for p in range(1, 10))]
        with client.pipeline() as pipe:
            for key in keys:
                pipe.llen(key)
            depths[queue] = int(sum(pipe.execute()))
    depths[UNACKED] = int(client.hlen(UNACKED))
    return depths
