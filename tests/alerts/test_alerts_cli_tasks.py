"""`artwatch` alerts commands, and the Celery tasks run by a real worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.cli import app
from alerts.sample import seed_matches

ROOT = Path(__file__).resolve().parents[2]


def test_reviewers_and_digest_commands_write_the_outbox(conn, store, settings):
    runner = CliRunner()
    r = runner.invoke(app, ["reviewers", "add", "Bo@Museum.test", "--name", "Bo", "--team",
                            "asia", "--password-stdin"], input="long enough pw\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["reviewers", "add", "cy@museum.test", "--password-stdin"],
                      input="short\n")
    assert r.exit_code == 2 and "at least" in r.output
    r = runner.invoke(app, ["reviewers", "add", "asia-team@museum.test", "--team", "asia",
                            "--no-login"])
    assert r.exit_code == 0 and "mail only" in r.output
    r = runner.invoke(app, ["reviewers", "list"])
    assert "bo@museum.test" in r.output and "asia-team@museum.test" in r.output

    seed_matches(conn, store, listings=2, candidates=2, seed=7)
    before = set(settings.outbox_dir.glob("*.eml")) if settings.outbox_dir.exists() else set()
    r = runner.invoke(app, ["digest", "send"])
    assert r.exit_code == 0, r.output
    assert "prepared 2, sent 2" in r.output  # Bo and the team list
    new = set(settings.outbox_dir.glob("*.eml")) - before
    assert len(new) == 2 and all(p.with_suffix(".html").is_file() for p in new)
    r = runner.invoke(app, ["digest", "send"])
    assert "prepared 0, sent 0" in r.output

    r = runner.invoke(app, ["reviewers", "disable", "bo@museum.test"])
    assert r.exit_code == 0
    assert not conn.execute(
        "SELECT active FROM reviewers WHERE email = 'bo@museum.test'").fetchone()["active"]
    from alerts.reviewers import authenticate

    assert authenticate(conn, "asia-team@museum.test", "") is None  # no login for lists


def test_beat_schedule_has_digest_cron_and_urgent_sweep():
    from celery.schedules import crontab

    import alerts.tasks  # noqa: F401 (importing it puts both tasks on the beat schedule)
    from artwatch.cron import crontab_of
    from artwatch.queue import SEND_DIGESTS, SEND_URGENT
    from artwatch.queue import app as celery_app

    schedule = {e["task"]: e["schedule"] for e in celery_app.conf.beat_schedule.values()}
    assert isinstance(schedule[SEND_DIGESTS], crontab)
    assert schedule[SEND_URGENT] == 60.0
    assert crontab_of("30 6 * * 1-5").hour == {6}
    with pytest.raises(ValueError, match="five fields"):
        crontab_of("every day")
    with pytest.raises(ValueError, match="hour '25'"):
        crontab_of("0 25 * * *")


@pytest.mark.slow
def test_urgent_task_runs_in_a_real_worker(conn, store, reviewer, smtp_server):
    from artwatch.queue import SEND_URGENT
    from artwatch.queue import app as celery_app

    box, port = smtp_server
    seeded = seed_matches(conn, store, listings=2, candidates=2, seed=3)
    hot = seeded.match_ids[0]
    conn.execute("UPDATE matches SET score = 0.99 WHERE id = %s", (hot,))
    env = dict(os.environ, ARTWATCH_SMTP_HOST="127.0.0.1", ARTWATCH_SMTP_PORT=str(port),
               ARTWATCH_SMTP_SECURITY="none", ARTWATCH_WEB_SECRET="w" * 32)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "alerts.tasks", "worker", "-P", "solo",
         "-Q", "artwatch", "--without-heartbeat", "--without-mingle", "--without-gossip",
         "-l", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        celery_app.send_task(SEND_URGENT, args=[[hot]])
        deadline = time.monotonic() + 90
        while not box.messages and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
        assert len(box.messages) == 1, "worker did not deliver"
        assert box.messages[0]["Subject"].startswith("[artwatch URGENT]")
        # The worker records "sent" just after the SMTP server has the message: wait for it.
        while time.monotonic() < deadline:
            row = conn.execute("SELECT kind, status FROM alerts").fetchone()
            if row is not None and row["status"] != "pending":
                break
            time.sleep(0.2)
        assert dict(row) == {"kind": "urgent", "status": "sent"}
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
    assert "Traceback" not in output, output


@pytest.mark.slow
def test_web_command_serves_the_app(clean_db):
    import httpx
    from alerts_support import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from alerts.cli import app; app()", "web", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert r.status_code == 200 and r.json() == {"ok": True}
        login = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=True)
        assert "Sign in" in login.text
    finally:
        server.terminate()
        server.communicate(timeout=20)
