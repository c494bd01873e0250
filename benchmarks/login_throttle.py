"""Benchmark: password guessing against `artwatch web` with and without sign-in throttling.

    .venv/bin/python benchmarks/login_throttle.py [--guesses 300] [--baseline 40]

Runs the review app as users do (`artwatch web`, its own uvicorn process) on a throw-away
database on the test PostgreSQL (ARTWATCH_TEST_ADMIN_URL, default
postgresql://postgres@127.0.0.1:5432/test) and drops it afterwards. Clients bind to
127.0.0.x, so the app sees distinct client addresses. Prints:

- the baseline: wrong passwords per second with throttling out of reach (limits 10,000);
- one client, `--guesses` wrong passwords: at which attempt 429 starts, the rate of checked
  (401) and of refused (429) attempts, and what the right password gets afterwards;
- then four more clients at once: what they get;
- one client spraying 40 e-mails (the address bucket);
- the reviewer's own browser (device cookie from an earlier sign-in) during the attack.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from artwatch.db.scratch import scratch_database  # noqa: E402

EMAIL, PASSWORD = "ana@museum.test", "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client(base: str, address: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=60,
                        transport=httpx.HTTPTransport(local_address=address))


def attempts(c: httpx.Client, email: str, passwords: list[str]) -> list[tuple[int, float]]:
    """(status, seconds since the first attempt began) per attempt, sequentially."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    out, start = [], time.perf_counter()
    for password in passwords:
        r = c.post("/login", data={"email": email, "password": password, "csrf_token": token,
                                   "next": "/"})
        out.append((r.status_code, time.perf_counter() - start))
    return out


def rate(results: list[tuple[int, float]], status: int) -> str:
    """Attempts per second over the attempts with this status (their own time span)."""
    times = [t for i, (s, t) in enumerate(results) if s == status]
    idx = [i for i, (s, _) in enumerate(results) if s == status]
    if len(times) < 2:
        return "-"
    begin = results[idx[0] - 1][1] if idx[0] > 0 else 0.0
    return f"{len(times) / (times[-1] - begin):.1f}/s"


class WebApp:
    """`artwatch web` in its own process, with these settings."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "artwatch.cli", "web", "--port", str(self.port)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("artwatch web did not start: " + (self.process.stderr.read() or ""))

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guesses", type=int, default=300)
    parser.add_argument("--baseline", type=int, default=40)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="artwatch-bench-"))
    with scratch_database() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARTWATCH_")}
        env.update(ARTWATCH_DATABASE_URL=url, ARTWATCH_DATA_DIR=str(data_dir),
                   ARTWATCH_WEB_SECRET=secrets.token_urlsafe(32))
        os.environ.update(env)
        try:
            return run(args, url, env)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def run(args: argparse.Namespace, url: str, env: dict[str, str]) -> int:
    from alerts.reviewers import add_reviewer
    from artwatch.db import connect, migrate

    migrate(url)
    with connect(url, autocommit=True) as conn:
        add_reviewer(conn, EMAIL, PASSWORD)

    print("== baseline: limits out of reach (10,000 failures per window)")
    app = WebApp({**env, "ARTWATCH_WEB_LOGIN_MAX_FAILURES_ACCOUNT": "10000",
                  "ARTWATCH_WEB_LOGIN_MAX_FAILURES_ADDRESS": "100000"})
    try:
        with client(app.base, "127.0.0.1") as c:
            base = attempts(c, EMAIL, [f"x{i}" for i in range(args.baseline)])
    finally:
        app.stop()
    print(f"  {len(base)} wrong passwords from one client: {Counter(s for s, _ in base)}, "
          f"{rate(base, 401)} (each an Argon2id check)")
    with connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE login_attempts, web_sessions")

    print("== throttled (defaults: 10 per account, 30 per address, 900 s window)")
    app = WebApp(env)
    try:
        with client(app.base, "127.0.0.9") as own:  # the reviewer's browser, before the attack
            first = own.post("/login", data={
                "email": EMAIL, "password": PASSWORD, "next": "/",
                "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"',
                                        own.get("/login").text).group(1)})
            device = own.cookies.get("artwatch_device")
        print(f"  reviewer's browser signs in before the attack: {first.status_code}, "
              f"device cookie {'set' if device else 'MISSING'}")
        with client(app.base, "127.0.0.1") as c:
            one = attempts(c, EMAIL, [f"guess {i}" for i in range(args.guesses)])
            right = attempts(c, EMAIL, [PASSWORD])[0][0]
        codes = [s for s, _ in one]
        start = codes.index(429) + 1 if 429 in codes else None
        print(f"  one client, {args.guesses} wrong passwords in {one[-1][1]:.1f} s: "
              f"{dict(Counter(codes))}; 429 from attempt {start}; checked {rate(one, 401)}, "
              f"refused {rate(one, 429)}; then the right password: {right}")

        def four(i: int) -> list[tuple[int, float]]:
            with client(app.base, f"127.0.0.{2 + i}") as other:
                return attempts(other, EMAIL, [f"more {i}.{j}" for j in range(25)] + [PASSWORD])

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(four, range(4)))
        elapsed = time.perf_counter() - t0
        flat = Counter(s for r in results for s, _ in r)
        print(f"  then four clients at once, 26 attempts each (last one right): {dict(flat)} "
              f"in {elapsed:.1f} s ({sum(flat.values()) / elapsed:.1f}/s)")

        with client(app.base, "127.0.0.6") as sprayer:
            spray = [attempts(sprayer, f"user{i}@museum.test", ["guess"])[0][0]
                     for i in range(40)]
        print(f"  one client spraying 40 e-mails: 429 from attempt "
              f"{spray.index(429) + 1 if 429 in spray else None}")

        with client(app.base, "127.0.0.1") as own:  # even from the attacker's address
            if device:
                own.cookies.set("artwatch_device", device, domain="127.0.0.1", path="/login")
            during = attempts(own, EMAIL, [PASSWORD])[0][0]
        print(f"  reviewer's browser (device cookie) during the attack: {during}")
    finally:
        log = app.stop()
    warnings = [line for line in log.splitlines() if "sign-in throttled" in line]
    print(f"  logged: {len(warnings)} throttling event(s)")
    for line in warnings:
        print("   ", line.strip()[:220])
    with connect(url) as conn:
        checked = conn.execute("SELECT count(*) AS n FROM login_attempts "
                               "WHERE outcome = 'failed'").fetchone()["n"]
    print(f"  password checks that failed, all clients: {checked}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
