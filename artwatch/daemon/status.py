"""`artwatch status`: the daemon's children, the queues, and the state of the work in PostgreSQL.

One snapshot (a dict, printed as JSON by `--json`) and a rich rendering of it. `problems`
lists what a user must act on; the command exits 1 when there is any:

- the daemon is not running, or a child is down, backing off, FATAL or given up;
- PostgreSQL or Redis does not answer;
- no active model bundle;
- listing photos stuck: stored but without a prediction, or still pending download, for
  longer than `STUCK_AFTER_S`;
- alerts whose delivery failed for good.

Nothing here starts anything: the embedded services are only looked up.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from artwatch.daemon.children import children
from artwatch.daemon.control import STARTING_STATES, UP_STATES, Supervisor
from artwatch.daemon.queues import queue_depths
from artwatch.daemon.runner import run_paths
from artwatch.settings import Settings

STUCK_AFTER_S = 15 * 60


def _urls(settings: Settings) -> tuple[str | None, str | None]:
    """Database and broker URLs without starting the embedded servers."""
    from artwatch.services import EmbeddedPostgres, EmbeddedRedis

    db = settings.database_url or EmbeddedPostgres(settings.services_dir / "postgres").url()
    rd = settings.redis_url or EmbeddedRedis(settings.services_dir / "redis").url()
    return db, rd


def _children(settings: Settings, problems: list[str]) -> dict[str, Any]:
    paths = run_paths(settings)
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(paths.state.read_text())
    recorded = state.get("children", {})
    supervisor = Supervisor(paths, timeout=5)
    running = supervisor.answering()
    live = supervisor.processes() if running else {}
    once = bool(state.get("once")) and running
    if live:
        names = list(live)
    else:  # what the last run had, else what a run would start
        names = list(recorded) or [c.name for c in children(settings, web=settings.run_web)]
    out: dict[str, Any] = {}
    now = int(time.time())
    for name in names:
        info = live.get(name)
        extra = recorded.get(name, {})
        entry: dict[str, Any] = {"state": "down", "pid": None, "uptime_s": None}
        if info is not None:
            entry = {"state": info.state, "pid": info.pid or None,
                     "uptime_s": now - info.started if info.state in UP_STATES else None}
        entry["restarts"] = int(extra.get("restarts", 0))
        if extra.get("given_up"):
            entry["state"] = "GIVEN UP"
        out[name] = entry
        expected_stop = once and name == "beat" and entry["state"] == "STOPPED"
        if running and entry["state"] == "BACKOFF":
            problems.append(f"child {name} is restarting with back-off")
        elif running and entry["state"] not in UP_STATES | STARTING_STATES and not expected_stop:
            problems.append(f"child {name} is {entry['state']}")
    if not running:
        problems.append("the daemon is not running (artwatch run)")
    return {"running": running, "supervisord_pid": supervisor.pid() if running else None,
            "started_at": state.get("started_at") if running else None, "once": once,
            "children": out}


_WORK_SQL = """
SELECT
  (SELECT count(*) FROM listing_images WHERE status = 'pending') AS photos_pending,
  (SELECT count(*) FROM listing_images WHERE status = 'failed') AS photos_failed,
  (SELECT count(DISTINCT image_id) FROM listing_images WHERE status = 'stored') AS photos_stored,
  (SELECT count(DISTINCT li.image_id) FROM listing_images li
    WHERE li.status = 'stored' AND EXISTS (
      SELECT 1 FROM predictions p JOIN bundles b ON b.id = p.bundle_id AND b.active
       WHERE p.image_id = li.image_id)) AS photos_matched,
  (SELECT count(DISTINCT li.image_id) FROM listing_images li
    WHERE li.status = 'stored'
      AND coalesce(li.queued_at, li.last_seen) < now() - make_interval(secs => %(stuck)s)
      AND NOT EXISTS (
      SELECT 1 FROM predictions p JOIN bundles b ON b.id = p.bundle_id AND b.active
       WHERE p.image_id = li.image_id)) AS photos_stuck_unmatched,
  (SELECT count(*) FROM listing_images
    WHERE status = 'pending' AND last_seen < now() - make_interval(secs => %(stuck)s)
  ) AS photos_stuck_pending,
  (SELECT count(*) FROM matches WHERE status = 'open') AS matches_new,
  (SELECT count(DISTINCT ai.match_id) FROM alert_items ai JOIN alerts a ON a.id = ai.alert_id
    WHERE a.status = 'sent') AS matches_alerted,
  (SELECT count(*) FROM matches WHERE status = 'confirmed') AS matches_confirmed,
  (SELECT count(*) FROM matches WHERE status = 'dismissed') AS matches_dismissed,
  (SELECT max(sent_at) FROM alerts WHERE kind = 'digest' AND status = 'sent') AS digest_last_sent,
  (SELECT count(*) FROM alerts WHERE status = 'failed') AS alerts_failed
"""

_CRAWLS_SQL = """
SELECT s.name, s.enabled, s.schedule, c.id, c.status, c.started_at, c.finished_at, c.stats,
       c.error
  FROM sources s
  LEFT JOIN LATERAL (SELECT * FROM crawls c WHERE c.source_id = s.id
                      ORDER BY c.started_at DESC LIMIT 1) c ON true
 ORDER BY s.name
"""


def _work(url: str, settings: Settings, problems: list[str]) -> dict[str, Any]:
    import psycopg
    from psycopg.rows import dict_row

    from matcher.scoring import target_not_reached  # torch: only when there is a database

    with psycopg.connect(url, connect_timeout=5, row_factory=dict_row) as conn:
        work = conn.execute(_WORK_SQL, {"stuck": STUCK_AFTER_S}).fetchone()
        crawls = conn.execute(_CRAWLS_SQL).fetchall()
        bundle = conn.execute(
            "SELECT b.name, b.architecture, b.created_at, b.info->'thresholds' AS thresholds, "
            "b.info->'score'->>'kind' AS score_kind, "
            "(SELECT count(*) FROM embeddings e JOIN object_images oi "
            "   ON oi.image_id = e.image_id WHERE e.bundle_id = b.id) AS indexed "
            "FROM bundles b WHERE b.active"
        ).fetchone()
    point = settings.match_operating_point
    active = None
    if bundle is None:
        problems.append("no active model bundle (artwatch train --activate, or "
                        "artwatch models activate NAME)")
    else:
        thresholds = bundle["thresholds"] if isinstance(bundle["thresholds"], dict) else {}
        calibrated = (thresholds.get("operating_points") or {}).get(point) or {}
        promise = {b: p.get("per_1000") for b, p in (calibrated.get("promise") or {}).items()}
        active = {"name": bundle["name"], "architecture": bundle["architecture"],
                  "created_at": bundle["created_at"].isoformat(timespec="seconds"),
                  "operating_point": point, "thresholds": calibrated.get("buckets"),
                  "promised_false_alerts_per_1000": promise,
                  "note": target_not_reached(point, calibrated),
                  "indexed_photos": int(bundle["indexed"])}
        if bundle["score_kind"] != "calibrated-evidence":
            problems.append("the active bundle has no calibrated score (train it again; the "
                            "matcher refuses it)")
        elif not calibrated:
            problems.append(f"the active bundle has no operating point {point} "
                            "(ARTWATCH_MATCH_OPERATING_POINT); matcher workers refuse to start")
        if not bundle["indexed"]:
            problems.append("the active bundle has no indexed catalogue photo (artwatch index)")
    stuck = work["photos_stuck_unmatched"] + work["photos_stuck_pending"]
    if stuck:
        problems.append(f"{stuck} listing photo(s) stuck for over {STUCK_AFTER_S // 60} min "
                        "(artwatch match pending re-sends stored ones)")
    if work["alerts_failed"]:
        problems.append(f"{work['alerts_failed']} alert(s) failed for good (see alerts.error)")
    last = work.pop("digest_last_sent")
    sources = []
    for row in crawls:
        stats = row["stats"] or {}
        sources.append({
            "source": row["name"], "enabled": row["enabled"], "schedule": row["schedule"],
            "crawl_id": row["id"], "status": row["status"],
            "started_at": row["started_at"].isoformat(timespec="seconds")
            if row["started_at"] else None,
            "lots": stats.get("item_scraped_count"), "listings_new":
            stats.get("artwatch/listings_new"), "photos_stored":
            stats.get("artwatch/photos_stored"), "photos_failed":
            stats.get("artwatch/photos_failed"), "error": row["error"],
        })
    return {"photos": {k.removeprefix("photos_"): int(v) for k, v in work.items()
                       if k.startswith("photos_")},
            "matches": {k.removeprefix("matches_"): int(v) for k, v in work.items()
                        if k.startswith("matches_")},
            "alerts_failed": int(work["alerts_failed"]),
            "digest_last_sent": last.isoformat(timespec="seconds") if last else None,
            "bundle": active, "sources": sources}


def gather(settings: Settings) -> dict[str, Any]:
    """Everything `artwatch status` shows, as plain data; `problems` lists what needs a user."""
    import psycopg
    import redis

    problems: list[str] = []
    snapshot: dict[str, Any] = {"children": None, "queues": None}
    db_url, redis_url = _urls(settings)
    if settings.daemon == "external":  # Compose/Kubernetes: they watch the containers
        snapshot["daemon"] = {"running": None, "external": True, "children": {}}
    else:
        snapshot["daemon"] = _children(settings, problems)
    if redis_url is None:
        problems.append("Redis is not running (artwatch services up)")
    else:
        try:
            snapshot["queues"] = queue_depths(redis_url)
        except redis.RedisError as exc:
            problems.append(f"Redis does not answer: {exc}")
    if db_url is None:
        problems.append("PostgreSQL is not running (artwatch services up)")
    else:
        try:
            snapshot.update(_work(db_url, settings, problems))
        except psycopg.Error as exc:
            problems.append(f"PostgreSQL does not answer: {str(exc).splitlines()[0]}")
    snapshot.pop("children")
    snapshot["problems"] = problems
    snapshot["ok"] = not problems
    return snapshot


def render(snapshot: dict[str, Any], console: Console) -> None:
    daemon = snapshot["daemon"]
    if daemon.get("external"):
        head = "daemon: children run as containers (docker compose ps shows them)"
    elif daemon["running"]:
        head = (f"daemon: running (supervisord pid {daemon['supervisord_pid']}, since "
                f"{daemon['started_at']})")
    else:
        head = "daemon: not running"
    console.print(f"[bold]{head}")
    table = Table("child", "state", "pid", "uptime", "restarts", title="children")
    for name, child in daemon["children"].items():
        colour = "green" if child["state"] in UP_STATES else "red"
        uptime = f"{child['uptime_s']}s" if child["uptime_s"] is not None else "-"
        table.add_row(name, f"[{colour}]{child['state']}", str(child["pid"] or "-"), uptime,
                      str(child["restarts"]))
    if daemon["children"]:
        console.print(table)
    if snapshot.get("queues") is not None:
        q = snapshot["queues"]
        console.print(f"queues: artwatch {q['artwatch']}, matcher {q['matcher']}, "
                      f"unacknowledged {q['unacked']}")
    if "photos" in snapshot:
        sources = Table("source", "enabled", "schedule", "last crawl", "status", "lots",
                        "new", "photos stored", "failed", title="sources")
        for s in snapshot["sources"]:
            sources.add_row(s["source"], "yes" if s["enabled"] else "no", s["schedule"],
                            s["started_at"] or "never", s["status"] or "-",
                            *(str(s[k]) if s[k] is not None else "-" for k in
                              ("lots", "listings_new", "photos_stored", "photos_failed")))
        console.print(sources)
        p, m = snapshot["photos"], snapshot["matches"]
        console.print(f"listing photos: {p['stored']} stored, {p['matched']} matched, "
                      f"{p['pending']} pending download, {p['failed']} failed, "
                      f"{p['stuck_unmatched'] + p['stuck_pending']} stuck")
        console.print(f"matches: {m['new']} new, {m['alerted']} alerted, {m['confirmed']} "
                      f"confirmed, {m['dismissed']} dismissed")
        b = snapshot["bundle"]
        console.print(
            f"active bundle: {b['name']} ({b['architecture']}, {b['created_at']}, "
            f"{b['indexed_photos']} catalogue photos indexed), operating point "
            f"{b['operating_point']}: thresholds by listing size and look {b['thresholds']}, "
            f"promised "
            f"false alerts per 1,000 {b['promised_false_alerts_per_1000']}"
            if b else "active bundle: none"
        )
        if b and b.get("note"):
            console.print(f"[yellow]note:[/yellow] {b['note']}")
        console.print(f"digest last sent: {snapshot['digest_last_sent'] or 'never'}")
    if snapshot["problems"]:
        for problem in snapshot["problems"]:
            console.print(f"[red]needs attention:[/red] {problem}")
    else:
        console.print("[green]all well")
