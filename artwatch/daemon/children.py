"""What `artwatch run` supervises: one list of child processes, from the settings.

- `beat`: Celery beat, exactly one (crawl schedules, digests, the urgent sweep);
- `worker`: a Celery worker on the `artwatch` queue (crawls, submissions, alert delivery);
- `matcher-<device>`: one Celery worker per configured device on the `matcher` queue,
  one process (solo pool, so one model in memory); its prefetch (two batches, so
  celery-batches can fill a whole batch while one is handled) comes from the Celery app's
  configuration (`artwatch.queue`), not a flag;
- `web`: the review web app.

The same commands are what `docker-compose.yml` runs, one service each.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from artwatch.settings import Settings

CELERY_APP = "artwatch.queue"


@dataclass(frozen=True)
class Child:
    """One supervised program: its name (also its log prefix), command and stop policy."""

    name: str
    role: str  # beat | worker | matcher | web
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    priority: int = 100  # started in increasing order, stopped in decreasing order
    # (equal priorities start and stop together)
    stop_wait_s: int = 60  # after SIGTERM, before SIGKILL


def matcher_name(device: str) -> str:
    """`cpu` -> `matcher-cpu`, `cuda:1` -> `matcher-cuda1`."""
    return "matcher-" + device.replace(":", "")


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", CELERY_APP, *args]


def worker_args(queue: str, node: str, *extra: str) -> list[str]:
    """A worker's command line (also used by docker-compose.yml, minus the interpreter)."""
    return celery("worker", "-Q", queue, "-n", f"{node}@%h", "--without-gossip",
                  "--without-mingle", "-l", "INFO", *extra)


def children(settings: Settings, *, web: bool = True) -> list[Child]:
    """Every child of the daemon, in start order."""
    out = []
    for device in settings.matcher_device_list:
        name = matcher_name(device)
        out.append(Child(
            name=name, role="matcher", priority=10,
            command=worker_args("matcher", name, "--pool", "solo"),
            environment={"ARTWATCH_MATCHER_DEVICE": device},
        ))
    out.append(Child(
        name="worker", role="worker", priority=10,  # stops beside the matchers
        # Threads: crawls wait on their Scrapy subprocess, alert delivery on SMTP.
        command=worker_args("artwatch", "worker", "--pool", "threads",
                            "--concurrency", str(settings.worker_concurrency)),
    ))
    out.append(Child(
        name="beat", role="beat", priority=30, stop_wait_s=20,
        command=celery("beat", "-l", "INFO",
                       "-s", str(settings.run_dir / "celerybeat-schedule")),
    ))
    if web:
        host, _, port = settings.web_listen.rpartition(":")
        out.append(Child(
            name="web", role="web", priority=40, stop_wait_s=20,
            command=[sys.executable, "-m", "artwatch.cli", "web", "--host", host,
                     "--port", port],
        ))
    return out
