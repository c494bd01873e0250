"""Benchmark: a 200-listing digest rendered and delivered over SMTP; the review queue page.

    .venv/bin/python benchmarks/digest.py [--listings 200] [--candidates 5]

Targets (issue 6): the digest of 200 suspected listings x 5 candidates is rendered and
delivered to a local SMTP server (aiosmtpd on loopback) in under 10 s, thumbnails made from
a cold cache; the review queue page with 1,000 open matches answers in under 300 ms.

It uses a throw-away database on the test PostgreSQL (ARTWATCH_TEST_ADMIN_URL, default
postgresql://postgres@127.0.0.1:5432/test) and a temporary data directory, and drops both.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from artwatch.db.scratch import scratch_database  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Box:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.sizes.append(len(envelope.content))
        return "250 OK"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--queue-requests", type=int, default=30)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="artwatch-bench-"))
    with scratch_database() as url:
        os.environ.update(ARTWATCH_DATABASE_URL=url, ARTWATCH_DATA_DIR=str(data_dir))
        os.environ.pop("ARTWATCH_CONFIG", None)
        try:
            return run(args, url, data_dir)
        finally:
            from artwatch.db.connection import close_pools

            close_pools()
            shutil.rmtree(data_dir, ignore_errors=True)


def run(args: argparse.Namespace, url: str, data_dir: Path) -> int:
    import httpx
    import uvicorn
    from aiosmtpd.controller import Controller

    from alerts.dispatch import Dispatcher
    from alerts.reviewers import add_reviewer
    from alerts.sample import seed_matches
    from alerts.web import create_app
    from artwatch.db import connect, migrate
    from artwatch.images import ImageStore
    from artwatch.settings import load_settings

    migrate(url)
    smtp_port, web_port = free_port(), free_port()
    settings = load_settings(
        data_dir=data_dir, database_url=url, smtp_host="127.0.0.1", smtp_port=smtp_port,
        smtp_security="none", web_secret=secrets.token_urlsafe(32),
        web_base_url=f"http://127.0.0.1:{web_port}",
    )
    t0 = time.perf_counter()
    with connect(url, autocommit=True) as conn:
        add_reviewer(conn, "bench@museum.test", "benchmark password")
        seed_matches(conn, ImageStore.from_settings(settings), listings=args.listings,
                     candidates=args.candidates, photos_per_listing=2,
                     objects=2 * args.listings)
        open_matches = conn.execute(
            "SELECT count(*) AS n FROM matches WHERE status = 'open'").fetchone()["n"]
    print(f"seeded {args.listings} listings x {args.candidates} candidates "
          f"({open_matches} open matches) in {time.perf_counter() - t0:.1f}s")

    box = Box()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        t0 = time.perf_counter()
        report = Dispatcher(settings, db_url=url, retry_base_delay_s=0.1).run()
        digest_s = time.perf_counter() - t0
    finally:
        controller.stop()
    ok_digest = len(report.sent) == 1 and len(box.sizes) == 1 and digest_s < 10
    print(f"digest: {args.listings} listings x {args.candidates} candidates rendered + "
          f"delivered over SMTP in {digest_s:.2f}s (target < 10s), message "
          f"{box.sizes[0] / 1e6 if box.sizes else 0:.1f} MB -> {'OK' if ok_digest else 'FAIL'}")

    app = create_app(settings, db_url=url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=web_port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=settings.web_base_url, timeout=30) as client:
            token = re.search(r'name="csrf_token" value="([^"]+)"',
                              client.get("/login").text).group(1)
            client.post("/login", data={"email": "bench@museum.test",
                                        "password": "benchmark password", "csrf_token": token})
            first = client.get("/")
            assert first.status_code == 200 and f"{open_matches} open matches" in first.text
            times = []
            for _ in range(args.queue_requests):
                t0 = time.perf_counter()
                r = client.get("/")
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
    times.sort()
    p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
    ok_queue = p95 < 0.3
    print(f"queue page with {open_matches} open matches: median "
          f"{1000 * statistics.median(times):.1f} ms, p95 {1000 * p95:.1f} ms, max "
          f"{1000 * times[-1]:.1f} ms over {len(times)} requests (target < 300 ms) -> "
          f"{'OK' if ok_queue else 'FAIL'}")
    return 0 if ok_digest and ok_queue else 1


if __name__ == "__main__":
    sys.exit(main())
