"""The secret that signs review links and web sessions.

`ARTWATCH_WEB_SECRET` wins. Without it a random key is generated once and kept in the data
directory (mode 0600), so links in yesterday's e-mail still verify after a restart and
every process on the machine (web app, Celery worker) signs with the same key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from artwatch.settings import Settings, get_settings


def web_secret(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.web_secret is not None and settings.web_secret.get_secret_value():
        return settings.web_secret.get_secret_value()
    path = Path(settings.data_dir) / "secrets" / "web_secret"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # O_EXCL: two processes starting together keep the same key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text(encoding="ascii").strip()
