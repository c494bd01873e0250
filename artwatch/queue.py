"""The Celery application every stage shares (Redis broker, messages carry ids only).

Stages never import each other: the crawler enqueues the matcher's work by task *name*,
and each stage's `tasks` module registers its tasks on this one app. The broker URL is
resolved when Celery first needs its configuration, so importing this module starts
nothing (the embedded Redis comes up only when a message is really sent or received).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

# Task names are the contract between stages.
MATCH_IMAGES = "matcher.match_images"
RETROHUNT = "matcher.retrohunt"  # kwargs: hunt_id
MATCHER_QUEUE = "matcher"
CRAWL_SOURCE = "crawler.crawl_source"
SCHEDULE_CRAWLS = "crawler.schedule_crawls"
SEND_DIGESTS = "alerts.send_digests"
SEND_URGENT = "alerts.send_urgent"
PROCESS_SUBMISSION = "crawler.process_submission"  # args: [submission_id]

TASK_MODULES = ["matcher.tasks", "crawler.tasks", "alerts.tasks"]

app = Celery("artwatch", include=TASK_MODULES)  # workers and beat know every stage's tasks


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    from artwatch.services.redis import redis_url

    sender.conf.update(
        broker_url=redis_url(),
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,  # a killed worker's message is redelivered; tasks are idempotent
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_default_queue="artwatch",
        # GPU work has its own workers: matching messages go to the `matcher` queue.
        task_routes={MATCH_IMAGES: {"queue": MATCHER_QUEUE}, RETROHUNT: {"queue": MATCHER_QUEUE}},
        # A late-acked message is redelivered after this long: longer than any crawl.
        broker_transport_options={"visibility_timeout": 6 * 3600},
        timezone="UTC",
        enable_utc=True,
    )
