"""The Celery application every stage shares (Redis broker, messages carry ids only).

Stages never import each other: the crawler enqueues the matcher's work by task *name*,
and each stage's `tasks` module registers its tasks on this one app. The broker URL is
resolved when Celery first needs its configuration, so importing this module starts
nothing (the embedded Redis comes up only when a message is really sent or received).

Worker settings that depend on what a worker does are set here too, when it starts
(`celeryd_init`), so no command line has to remember them: a worker on the `matcher` queue
prefetches two batches (`ARTWATCH_MATCHER_BATCH_SIZE`: one handled, one buffering) and, when
it serves only that queue, keeps its unacknowledged messages under its own Redis keys with a
visibility timeout of minutes (`ARTWATCH_MATCHER_VISIBILITY_TIMEOUT_S`), so the messages a
killed matcher held come back in minutes while a crawl (hours) keeps the long timeout.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

from celery import Celery, signals

# Task names are the contract between stages.
MATCH_IMAGES = "matcher.match_images"
RETROHUNT = "matcher.retrohunt"  # kwargs: hunt_id
MATCHER_QUEUE = "matcher"
CRAWL_SOURCE = "crawler.crawl_source"
SCHEDULE_CRAWLS = "crawler.schedule_crawls"
SEND_DIGESTS = "alerts.send_digests"
SEND_URGENT = "alerts.send_urgent"
PROCESS_SUBMISSION = "crawler.process_submission"  # args: [submission_id]

SWEEP_MATCHER = "matcher.sweep"

TASK_MODULES = ["matcher.tasks", "crawler.tasks", "alerts.tasks"]

app = Celery("artwatch", include=TASK_MODULES)  # workers and beat know every stage's tasks


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    from artwatch.services.redis import redis_url

    url = redis_url()
    sender.conf.update(
        broker_url=url,
        # kombu's Redis transport, moving poison entries aside instead of dying on them.
        broker_transport="artwatch.broker:Transport" if url.startswith("redis://") else None,
        worker_consumer="artwatch.broker:Consumer",
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,  # a killed worker's message is redelivered; tasks are idempotent
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_default_queue="artwatch",
        # GPU work has its own workers: matching messages go to the `matcher` queue.
        task_routes={MATCH_IMAGES: {"queue": MATCHER_QUEUE},
                     SWEEP_MATCHER: {"queue": MATCHER_QUEUE},
                     RETROHUNT: {"queue": MATCHER_QUEUE}},
        # A late-acked message is redelivered after this long: longer than any crawl.
        broker_transport_options={"visibility_timeout": 6 * 3600},
        timezone="UTC",
        enable_utc=True,
    )


def matcher_prefetch_multiplier(batch_size: int, concurrency: int) -> int:
    """Prefetch per pool process so a worker holds two batches: one handled, one filling."""
    return max(1, math.ceil(2 * batch_size / max(1, concurrency)))


def matcher_transport_options(visibility_timeout_s: float) -> dict[str, Any]:
    """Redis transport options of a worker serving only the matcher queue.

    Its own unacked keys: kombu restores every message in the unacked index older than the
    restoring worker's visibility timeout, so a short timeout on the shared keys would hand a
    running crawl's message to a second worker.
    """
    return {
        "visibility_timeout": visibility_timeout_s,
        "unacked_key": f"{MATCHER_QUEUE}.unacked",
        "unacked_index_key": f"{MATCHER_QUEUE}.unacked_index",
        "unacked_mutex_key": f"{MATCHER_QUEUE}.unacked_mutex",
        "unacked_restore_interval": 10,  # look for abandoned messages every 10 s
        "unacked_restore_throttle": 1,
    }


def _queue_names(value: str | Iterable[str] | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [q.strip() for q in value if q and q.strip()]


_prefetch: dict[str, int] = {}  # this worker's multiplier, from _worker_settings


@signals.worker_init.connect
def _worker_prefetch(sender: Any = None, **_: Any) -> None:
    """Apply the matcher's prefetch: `celery worker` resolved its option (default 1) from the
    configuration before `celeryd_init`, so the worker object is set, not the configuration.
    An explicit larger --prefetch-multiplier is kept."""
    multiplier = _prefetch.get("multiplier")
    if multiplier and sender is not None:
        sender.prefetch_multiplier = max(int(sender.prefetch_multiplier or 1), multiplier)


@signals.celeryd_init.connect
def _worker_settings(conf: Any = None, options: dict[str, Any] | None = None, **_: Any) -> None:
    """Per-worker settings from what the worker consumes (set before it connects)."""
    from artwatch.settings import get_settings

    options = options or {}
    queues = _queue_names(options.get("queues"))
    if MATCHER_QUEUE not in queues or conf is None:
        _prefetch.pop("multiplier", None)
        return
    settings = get_settings()
    pool = options.get("pool_cls")
    pool_name = f"{getattr(pool, '__module__', '')}.{getattr(pool, '__name__', pool)}"
    # The solo pool runs one batch at a time whatever --concurrency says; prefork's default
    # concurrency is the number of cores.
    concurrency = 1 if "solo" in pool_name else int(options.get("concurrency")
                                                    or os.cpu_count() or 1)
    _prefetch["multiplier"] = conf.worker_prefetch_multiplier = matcher_prefetch_multiplier(
        settings.matcher_batch_size, concurrency)
    if queues == [MATCHER_QUEUE]:
        conf.broker_transport_options = {
            **(conf.broker_transport_options or {}),
            **matcher_transport_options(settings.matcher_visibility_timeout_s),
        }
