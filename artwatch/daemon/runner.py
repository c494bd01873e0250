"""`artwatch run`: start supervisord with the generated config and watch it until told to stop.

This process (the controller) stays in front: it owns the terminal and the signals, and
supervisord runs in a session of its own under it (it also gets SIGTERM if the controller
dies, through PR_SET_PDEATHSIG, so no orphaned daemon keeps running).

- SIGINT / SIGTERM: supervisord stops the children in reverse start order (web, beat, the
  `artwatch` worker, matcher workers), each with SIGTERM to its process group: a Celery
  worker finishes the task in hand (warm shutdown) and hands back the messages it had
  prefetched but not started (they are unacknowledged: kombu puts them back on the queue
  as its connection closes), so nothing queued is lost; after `stop_wait_s` a child is
  killed. The embedded PostgreSQL and Redis keep running (`artwatch services down`
  stops them), so nothing of theirs is cut off half-way.
- A child that exits is restarted by supervisord at once; one that dies within
  `START_SECS` of starting is retried with growing back-off and marked FATAL after
  `START_RETRIES` tries. A child that keeps dying later in its life (GIVE_UP_RESTARTS
  restarts within GIVE_UP_WINDOW_S) is stopped by the controller. Both are reported here,
  in `artwatch status`, and end `--once` with exit status 1: reported, not looped.
- `state.json` in the run directory records restarts for `artwatch status`.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from artwatch.daemon.children import Child, children
from artwatch.daemon.config import RunPaths, render
from artwatch.daemon.control import Supervisor
from artwatch.files import write_atomic
from artwatch.settings import CONFIG_ENV, Settings, config_file

GIVE_UP_RESTARTS = 5
GIVE_UP_WINDOW_S = 600.0
POLL_S = 0.5
START_TIMEOUT_S = 60.0


def run_paths(settings: Settings) -> RunPaths:
    return RunPaths(settings.run_dir, settings.logs_dir)


@dataclass
class Watch:
    """What the controller knows about one child beyond supervisord's present state."""

    pid: int = 0
    restarts: int = 0
    recent: deque[float] = field(default_factory=deque)
    given_up: bool = False
    fatal_reported: bool = False
    last_restart_at: str | None = None


def _die_with_parent() -> None:
    """In the child (supervisord): get SIGTERM when the controller dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Daemon:
    """One `artwatch run` (or `artwatch run --once`)."""

    def __init__(self, settings: Settings, console: Console, *, once: bool = False,
                 web: bool | None = None, timeout_s: float | None = None) -> None:
        self.settings = settings
        self.console = console
        self.once = once
        self.timeout_s = timeout_s
        self.paths = run_paths(settings)
        web = settings.run_web and not once if web is None else web
        self.children: list[Child] = children(settings, web=web)
        self.watch = {c.name: Watch() for c in self.children}
        self.stop_signal: int | None = None
        self.failed: list[str] = []
        self.started_at = dt.datetime.now(dt.UTC)

    # --- set-up -----------------------------------------------------------------------

    def child_environment(self) -> dict[str, str]:
        """What every child gets besides the controller's own environment (no secrets)."""
        env = {"PYTHONUNBUFFERED": "1", "ARTWATCH_DATA_DIR": str(self.settings.data_dir)}
        config = config_file()
        if config is not None:  # children must read the same file whatever their cwd
            env[CONFIG_ENV] = str(config.resolve())
        return env

    def write_config(self) -> None:
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.paths.run_dir, 0o700)
        self.paths.logs_dir.mkdir(parents=True, exist_ok=True)
        text = render(self.children, self.paths, self.child_environment())
        write_atomic(self.paths.config, text.encode(), durable=False)

    def start_supervisord(self) -> subprocess.Popen[bytes]:
        errors = (self.paths.logs_dir / "supervisord.stderr").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.paths.config)],
            stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
            start_new_session=True, preexec_fn=_die_with_parent,
        )

    # --- watching ---------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum

    def report(self, message: str) -> None:
        self.console.print(f"[red]artwatch run:[/red] {message}")

    def check_children(self, supervisor: Supervisor) -> None:
        now = time.monotonic()
        for name, info in supervisor.processes().items():
            watch = self.watch.get(name)
            if watch is None:
                continue
            # A restart is a new pid that got as far as RUNNING; deaths while starting are
            # supervisord's to retry (with back-off) and to declare FATAL.
            if info.state == "RUNNING":
                if watch.pid and info.pid != watch.pid:
                    watch.restarts += 1
                    watch.recent.append(now)
                    watch.last_restart_at = dt.datetime.now(dt.UTC).isoformat(
                        timespec="seconds")
                    self.console.print(f"{name} restarted (pid {watch.pid} -> {info.pid})")
                watch.pid = info.pid
            while watch.recent and now - watch.recent[0] > GIVE_UP_WINDOW_S:
                watch.recent.popleft()
            if info.state == "FATAL" and not watch.fatal_reported:
                watch.fatal_reported = True
                self.failed.append(name)
                self.report(f"{name} keeps dying as it starts: FATAL after retries with "
                            f"back-off; see {self.paths.child_log(name)}")
            if len(watch.recent) >= GIVE_UP_RESTARTS and not watch.given_up:
                watch.given_up = True
                self.failed.append(name)
                with contextlib.suppress(Exception):
                    supervisor.stop(name)
                self.report(f"{name} keeps dying ({len(watch.recent)} restarts in "
                            f"{GIVE_UP_WINDOW_S / 60:.0f} min): stopped; see "
                            f"{self.paths.child_log(name)}")

    def write_state(self, supervisor_pid: int | None, stopped: bool = False) -> None:
        state = {
            "controller_pid": os.getpid(),
            "supervisord_pid": supervisor_pid,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "once": self.once,
            "stopped": stopped,
            "children": {
                c.name: {"role": c.role, "restarts": self.watch[c.name].restarts,
                         "given_up": self.watch[c.name].given_up,
                         "last_restart_at": self.watch[c.name].last_restart_at}
                for c in self.children
            },
        }
        write_atomic(self.paths.state, json.dumps(state, indent=1).encode(), durable=False)

    def print_children(self) -> None:
        table = Table("child", "command", title="artwatch run: supervised children")
        for child in self.children:
            shown = " ".join(child.command[1:] if child.command[0] == sys.executable
                             else child.command)
            table.add_row(child.name, shown)
        self.console.print(table)
        self.console.print(f"logs: {self.paths.combined_log} (every child, name on each "
                           f"line) and {self.paths.logs_dir}/<child>.log")

    # --- the run ----------------------------------------------------------------------

    def run(self) -> int:
        """Run until a signal (or, with `once`, until the cycle is done); the exit status."""
        supervisor = Supervisor(self.paths)
        if supervisor.answering():
            self.report(f"already running (supervisord pid {supervisor.pid()}, "
                        f"socket {self.paths.socket})")
            return 2
        self.write_config()
        self.print_children()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        process = self.start_supervisord()
        try:
            return self._supervise(process, supervisor)
        finally:
            self._shutdown(process, supervisor)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self, process: subprocess.Popen[bytes], supervisor: Supervisor) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not supervisor.answering():
            if process.poll() is not None or time.monotonic() > deadline:
                self.report(f"supervisord did not start; see {self.paths.logs_dir}/"
                            "supervisord.stderr and supervisord.log")
                return 1
            if self.stop_signal:
                return 0
            time.sleep(0.2)
        supervisor_pid = supervisor.pid()
        self.console.print(f"supervisord pid {supervisor_pid}; stop with Ctrl-C or "
                           f"kill -TERM {os.getpid()}")
        cycle = None
        if self.once:
            from artwatch.daemon.once import OnceCycle

            cycle = OnceCycle(self.settings, self.console, supervisor)
        ends = time.monotonic() + self.timeout_s if self.timeout_s else None
        while self.stop_signal is None:
            if process.poll() is not None:
                self.report(f"supervisord exited unexpectedly ({process.returncode})")
                return 1
            try:
                self.check_children(supervisor)
            except (OSError, ConnectionError) as exc:  # supervisord stopping under us
                self.report(f"lost contact with supervisord: {exc}")
            self.write_state(supervisor_pid)
            if cycle is not None:
                if self.failed:
                    self.report("--once stopped early: a child keeps dying")
                    return 1
                if cycle.poll():
                    cycle.summary()
                    return 0
            if ends is not None and time.monotonic() > ends:
                self.report(f"stopped after --timeout {self.timeout_s:.0f}s")
                return 1
            time.sleep(POLL_S)
        self.console.print(f"received {signal.Signals(self.stop_signal).name}: stopping")
        return 0 if not self.failed else 1

    def _shutdown(self, process: subprocess.Popen[bytes], supervisor: Supervisor) -> None:
        if process.poll() is not None:
            return
        started = time.monotonic()
        try:
            supervisor.shutdown()
        except Exception:  # not answering yet or any more: the signal does the same
            process.send_signal(signal.SIGTERM)
        limit = sum(c.stop_wait_s for c in self.children) + 30
        try:
            process.wait(limit)
        except subprocess.TimeoutExpired:
            self.report(f"supervisord did not stop within {limit}s: killing it")
            process.kill()
            process.wait()
        took = time.monotonic() - started
        with contextlib.suppress(OSError):
            self.write_state(None, stopped=True)
        note = ""
        if not (self.settings.database_url and self.settings.redis_url):
            note = ("; the embedded services keep running (artwatch services down stops "
                    "them)")
        self.console.print(f"all children stopped in {took:.1f}s{note}")
