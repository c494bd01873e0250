"""Celery tasks of the alerting stage, and their beat schedule.

`alerts.send_digests` runs on the `digest_cron` schedule (UTC); `alerts.send_urgent` is
sent by the matcher with the ids of matches it just wrote (an immediate alert for those
scoring at least `alert_urgent_score`) and also runs every minute as a sweep, so an
urgent match whose message was lost still goes out. Both are idempotent: the
(match, reviewer) key means re-running a task sends nothing twice.
"""

from __future__ import annotations

import logging

from artwatch.cron import crontab_of
from artwatch.queue import SEND_DIGESTS, SEND_URGENT, app
from artwatch.settings import get_settings

log = logging.getLogger(__name__)

URGENT_SWEEP_S = 60.0


@app.task(name=SEND_DIGESTS, acks_late=True, ignore_result=True)
def send_digests() -> dict[str, object]:
    from alerts.dispatch import send_digests as run

    report = run().as_dict()
    log.info("digests: %s", report)
    return report


@app.task(name=SEND_URGENT, acks_late=True, ignore_result=True)
def send_urgent(match_ids: list[int] | None = None) -> dict[str, object]:
    from alerts.dispatch import send_urgent as run

    report = run([int(i) for i in match_ids] if match_ids else None).as_dict()
    if report["prepared"]:
        log.info("urgent alerts: %s", report)
    return report


def register_beat() -> None:
    """Put both tasks on the beat schedule (Celery applies this once the app is configured)."""
    app.add_periodic_task(
        crontab_of(get_settings().digest_cron), app.signature(SEND_DIGESTS),
        name="alerts: digests",
    )
    app.add_periodic_task(URGENT_SWEEP_S, app.signature(SEND_URGENT), name="alerts: urgent sweep")


register_beat()
