"""`artwatch run` and `artwatch status` with real processes: supervisord, Celery workers and
beat, the review app, against this machine's PostgreSQL and Redis.

The matcher works on a random-weight bundle (fast; training is tested elsewhere): what is
checked here is the supervision: every child starts, a killed one comes back within
seconds, SIGTERM stops everything cleanly, and no photo is lost or processed twice.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from daemon_support import (
    REPO,
    RunningDaemon,
    artwatch,
    enqueue_one_per_message,
    free_port,
    jpeg,
    random_world,
    status,
)
from rich.console import Console

from artwatch.daemon.children import children
from artwatch.daemon.config import RunPaths, render
from artwatch.daemon.listener import serve
from artwatch.daemon.status import gather
from artwatch.daemon.status import render as render_status
from artwatch.images import ImageStore
from artwatch.queue import app
from artwatch.settings import load_settings

CHILDREN = ("matcher-cpu", "worker", "beat", "web")


def _purge_queues() -> None:
    with app.connection_for_write() as connection:
        for queue in ("matcher", "artwatch"):
            connection.default_channel.queue_purge(queue)


def _count(conn, sql: str, *params: object) -> int:
    return int(conn.execute(sql, params).fetchone()["n"])


def test_config_names_every_child_and_escapes_percent(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, matcher_devices="cpu,cuda:1",
                             matcher_batch_size=48)
    kids = children(settings)
    assert [c.name for c in kids] == ["matcher-cpu", "matcher-cuda1", "worker", "beat", "web"]
    matcher = kids[1]
    assert matcher.environment == {"ARTWATCH_MATCHER_DEVICE": "cuda:1"}
    # Prefetch comes from the app's configuration (two batches), not a flag a user could drop.
    assert "--prefetch-multiplier" not in matcher.command
    from artwatch.queue import matcher_prefetch_multiplier

    assert matcher_prefetch_multiplier(48, 1) >= 48
    text = render(kids, RunPaths(tmp_path / "run", tmp_path / "logs"), {"X": "50%"})
    assert "matcher-cuda1@%%h" in text and 'X="50%%"' in text  # supervisord expands %(...)s
    for name in ("matcher-cpu", "matcher-cuda1", "worker", "beat", "web"):
        assert f"[program:{name}]" in text
    assert [c.name for c in children(settings, web=False)][-1] == "beat"


def test_listener_puts_the_childs_name_on_every_line(tmp_path: Path) -> None:
    """supervisor's event protocol in bytes; a chunk that ends mid-line waits for the rest."""
    def event(name: str, kind: str, body: bytes) -> bytes:
        payload = f"processname:{name} groupname:{name} pid:7 channel:stdout\n".encode() + body
        return (f"ver:3.0 server:artwatch serial:1 pool:logs poolserial:1 eventname:{kind} "
                f"len:{len(payload)}\n").encode() + payload

    stdin = io.BytesIO(
        event("beat", "PROCESS_LOG_STDOUT", b"first line\nsecond ")
        + event("worker", "PROCESS_LOG_STDOUT", "café ready\n".encode())
        + event("beat", "PROCESS_LOG_STDOUT", b"half\n")
    )
    stdout = io.BytesIO()
    log = tmp_path / "artwatch.log"
    serve(str(log), stdin, stdout)
    replies = stdout.getvalue()
    assert replies.count(b"READY\n") == 4 and replies.count(b"RESULT 2\nOK") == 3
    lines = [line.split(" ", 2)[2] for line in log.read_text().splitlines()]
    assert lines == ["beat           | first line", "worker         | café ready",
                     "beat           | second half"]


@pytest.mark.slow
def test_run_supervises_restarts_stops_and_loses_no_photo(conn, settings, tmp_path) -> None:
    store = ImageStore.from_settings(settings)
    random_world(conn, store, tmp_path / "bundle", listings=30, photos_per_listing=4)
    _purge_queues()
    env = dict(os.environ, ARTWATCH_WEB_LISTEN=f"127.0.0.1:{free_port()}")
    daemon = RunningDaemon(tmp_path / "run-1.log", env=env)
    figures: dict[str, float] = {}
    try:
        # Every child starts.
        figures["start"] = daemon.wait_until(
            lambda c: all(c.get(n, {}).get("state") == "RUNNING" for n in CHILDREN), 240,
            "all children running")
        code, snapshot = status(env)
        assert code == 0 and snapshot["ok"], snapshot["problems"]
        combined = (settings.logs_dir / "artwatch.log").read_text()
        for name in CHILDREN:  # one file, the child's name on each of its lines
            assert re.search(rf"^\S+ \S+ {re.escape(name)}\s+\| ", combined, re.M), name

        # kill -9 of the matcher worker while it matches, then of beat: each is back.
        total = enqueue_one_per_message(conn)
        started = time.monotonic()
        while _count(conn, "SELECT count(*) AS n FROM predictions") == 0:
            assert time.monotonic() - started < 180, daemon.output()[-2000:]
            time.sleep(0.2)
        log = settings.logs_dir / "artwatch.log"
        for name, ready in (("matcher-cpu", "ready."), ("beat", "beat: Starting...")):
            def readies(n: str = name, r: str = ready) -> int:
                return len(re.findall(rf"^\S+ \S+ {n}\s+\|.*{re.escape(r)}$", log.read_text(),
                                      re.M))

            seen = readies()
            pid = daemon.children()[name]["pid"]
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            while readies() <= seen:  # the new process logged that it is serving
                assert time.monotonic() - killed < 120, log.read_text()[-3000:]
                time.sleep(0.2)
            figures[f"restart {name} (serving)"] = time.monotonic() - killed
            daemon.wait_until(  # and supervisord counts it started (up for startsecs)
                lambda c, n=name, p=pid: c[n]["state"] == "RUNNING" and c[n]["pid"] != p, 120,
                f"{name} back")
            figures[f"restart {name} (RUNNING)"] = time.monotonic() - killed
        # Each counted once: the controller records restarts on its own poll (POLL_S), which
        # may come just after supervisord reports the new process RUNNING.
        daemon.wait_until(lambda c: c["matcher-cpu"]["restarts"] == 1
                          and c["beat"]["restarts"] == 1, 30, "both restarts counted")
        time.sleep(2)  # and never counted twice
        children_now = daemon.children()
        assert children_now["matcher-cpu"]["restarts"] == 1
        assert children_now["beat"]["restarts"] == 1

        # status --json reflects a stopped child and a stuck photo.
        stuck = conn.execute("SELECT listing_id FROM listing_images LIMIT 1").fetchone()
        from artwatch.images.records import record_image

        image = record_image(conn, store.put(jpeg(424242)))
        conn.execute("INSERT INTO listing_images (listing_id, url, position, image_id, status, "
                     "queued_at, last_seen) VALUES (%s, 'http://127.0.0.1:9/stuck.jpg', 9, %s, "
                     "'stored', now() - interval '1 hour', now() - interval '1 hour')",
                     (stuck["listing_id"], image))
        ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c",
               str(settings.run_dir / "supervisord.conf")]
        subprocess.run([*ctl, "stop", "web"], check=True, capture_output=True, timeout=60)
        code, snapshot = status(env)
        assert code == 1 and not snapshot["ok"]
        assert snapshot["daemon"]["children"]["web"]["state"] == "STOPPED"
        assert snapshot["photos"]["stuck_unmatched"] == 1
        assert any("web" in p for p in snapshot["problems"])
        assert any("stuck" in p for p in snapshot["problems"])
        subprocess.run([*ctl, "start", "web"], check=True, capture_output=True, timeout=60)

        # SIGTERM during matching: a clean exit within the bound.
        more = random_world_more(conn, store, listings=30)
        enqueue_more = enqueue_one_per_message(conn) - total
        assert enqueue_more >= more
        before = _count(conn, "SELECT count(*) AS n FROM predictions")
        started = time.monotonic()
        while _count(conn, "SELECT count(*) AS n FROM predictions") == before:
            assert time.monotonic() - started < 120, daemon.output()[-2000:]
            time.sleep(0.1)
        figures["SIGTERM stop"] = daemon.stop(timeout=150)
        assert daemon.process.returncode == 0, daemon.output()[-3000:]
        assert "all children stopped" in daemon.output()
        assert not re.search(r"celery -A artwatch.queue", _own_processes(daemon.env))
    finally:
        daemon.kill()

    # A restart finishes the queue: every stored photo recognised exactly once.
    done = artwatch("run", "--once", "--timeout", "600", env=env, timeout=700)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    stored = _count(conn, "SELECT count(DISTINCT image_id) AS n FROM listing_images "
                          "WHERE status = 'stored'")
    assert stored == 60 * 4 + 1
    assert _count(conn, "SELECT count(*) AS n FROM predictions") == stored
    assert _count(conn, "SELECT count(DISTINCT image_id) AS n FROM predictions") == stored
    assert _count(conn, "SELECT count(*) AS n FROM (SELECT listing_id, object_id, bundle_id "
                        "FROM matches GROUP BY 1, 2, 3 HAVING count(*) > 1) d") == 0
    print("\ndaemon figures (s):", {k: round(v, 1) for k, v in figures.items()})


def random_world_more(conn, store, *, listings: int) -> int:
    """More listings with stored photos for the same source (a second wave of work)."""
    from artwatch.images.records import record_image

    source = conn.execute("SELECT id FROM sources WHERE name = 'house'").fetchone()["id"]
    added = 0
    for n in range(listings):
        listing = conn.execute(
            "INSERT INTO listings (source_id, external_id, url) VALUES (%s, %s, %s) "
            "RETURNING id", (source, f"more-{n}", f"http://127.0.0.1:9/more/{n}")
        ).fetchone()["id"]
        for p in range(4):
            image = record_image(conn, store.put(jpeg(50_000 + 4 * n + p)))
            conn.execute("INSERT INTO listing_images (listing_id, url, position, image_id, "
                         "status, queued_at) VALUES (%s, %s, %s, %s, 'stored', now())",
                         (listing, f"http://127.0.0.1:9/more/{n}-{p}.jpg", p, image))
            added += 1
    return added


def _own_processes(env: dict[str, str]) -> str:
    """Command lines of processes run with this test session's data directory."""
    import psutil

    mine = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            if (proc.info["environ"] or {}).get("ARTWATCH_DATA_DIR") == env["ARTWATCH_DATA_DIR"]:
                mine.append(" ".join(proc.info["cmdline"] or []))
        except (psutil.Error, OSError):
            continue
    return "\n".join(mine)


@pytest.mark.slow
def test_child_that_keeps_dying_is_reported_not_looped(tmp_path: Path) -> None:
    """Quick deaths: supervisord's back-off, then FATAL. Later deaths: the controller's count."""
    script = textwrap.dedent("""
        import sys
        from rich.console import Console
        from artwatch.daemon import runner
        from artwatch.daemon.children import Child
        from artwatch.settings import get_settings

        runner.GIVE_UP_RESTARTS = 3
        daemon = runner.Daemon(get_settings(), Console(width=200), timeout_s=240)
        daemon.children = [
            Child("crasher", "worker", [sys.executable, "-c", "raise SystemExit(3)"]),
            Child("late-crasher", "worker",
                  [sys.executable, "-c", "import time; time.sleep(6); raise SystemExit(4)"]),
        ]
        daemon.watch = {c.name: runner.Watch() for c in daemon.children}
        sys.exit(daemon.run())
    """)
    log = tmp_path / "crash.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        while not ("crasher keeps dying as it starts" in log.read_text()
                   and "late-crasher keeps dying (3 restarts" in log.read_text()):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() - started < 180, log.read_text()
            time.sleep(0.5)
        code, snapshot = status()
        kids = snapshot["daemon"]["children"]
        assert kids["crasher"]["state"] == "FATAL"
        assert kids["late-crasher"]["state"] == "GIVEN UP"
        assert code == 1 and any("crasher" in p for p in snapshot["problems"])
        restarts = kids["late-crasher"]["restarts"]
        time.sleep(10)  # stopped: no further restarts
        assert status()[1]["daemon"]["children"]["late-crasher"]["restarts"] == restarts
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 1  # a run whose child gave up ends in failure
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_status_when_nothing_runs_says_so(tmp_path: Path) -> None:
    env = dict(os.environ, ARTWATCH_DATA_DIR=str(tmp_path))
    code, snapshot = status(env)
    assert code == 1
    assert snapshot["daemon"]["running"] is False
    assert "the daemon is not running (artwatch run)" in snapshot["problems"]
    assert set(snapshot["daemon"]["children"]) == set(CHILDREN)
    assert all(c["state"] == "down" for c in snapshot["daemon"]["children"].values())


def test_status_says_when_the_operating_point_could_not_reach_its_target(conn, settings,
                                                                          tmp_path) -> None:
    """A bundle whose calibration could not certify the configured precision target serves
    the strictest cuts; `artwatch status` says so beside the bundle (a note, not a problem:
    every promise still holds) and says nothing once the target is reached."""
    point = {"target": "precision", "value": 0.95, "reached": False, "alpha": 1e-4,
             "buckets": {"1": 0.9}, "promise": {"1": {"per_1000": 38.5}},
             "calibration": {"expected_precision": 0.933}}
    info = {"thresholds": {"operating_points": {settings.match_operating_point: point}},
            "score": {"kind": "calibrated-evidence"}}
    conn.execute("INSERT INTO bundles (name, path, architecture, info, active) "
                 "VALUES ('small', %s, 'tf_efficientnet_lite0', %s::jsonb, true)",
                 (str(tmp_path), json.dumps(info)))
    snapshot = gather(settings)
    note = snapshot["bundle"]["note"]
    assert f"operating point {settings.match_operating_point}" in note
    assert "cannot certify precision 0.95 (at best 0.933" in note
    assert note not in snapshot["problems"]
    console = Console(record=True, width=300)
    render_status(snapshot, console)
    assert "cannot certify precision 0.95" in console.export_text()
    conn.execute("UPDATE bundles SET info = %s::jsonb",
                 (json.dumps({**info, "thresholds": {"operating_points": {
                     settings.match_operating_point: {**point, "reached": True}}}}),))
    assert gather(settings)["bundle"]["note"] is None
