"""Fixtures for the alerting stage: a real SMTP server (aiosmtpd) on loopback, seeded matches."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from alerts_support import Mailbox, free_port

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(smtp_server):
    from artwatch.settings import get_settings, load_settings

    _, port = smtp_server
    base = get_settings()
    return load_settings(
        data_dir=base.data_dir,
        database_url=base.database_url,
        redis_url=base.redis_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        web_base_url="http://127.0.0.1:8765",
        web_secret="test-secret-for-links-0123456789",
    )


@pytest.fixture
def store(settings):
    from artwatch.images import ImageStore

    return ImageStore.from_settings(settings)


@pytest.fixture
def reviewer(conn):
    from alerts.reviewers import add_reviewer

    return add_reviewer(conn, "ana@museum.test", "correct horse battery", name="Ana Reviewer")


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@dataclass
class WebServer:
    base_url: str
    settings: object


def start_web_server(db_url: str, **overrides: object) -> Iterator[WebServer]:
    """The review app on a real uvicorn server on loopback (in a thread), until closed."""
    import time

    import uvicorn

    from alerts.web import create_app
    from artwatch.settings import get_settings, load_settings

    port = free_port()
    base = get_settings()
    settings = load_settings(
        data_dir=base.data_dir,
        database_url=base.database_url,
        web_base_url=f"http://127.0.0.1:{port}",
        web_secret="test-secret-for-links-0123456789",
        **overrides,
    )
    app = create_app(settings, db_url=db_url)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield WebServer(f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def web_server(clean_db) -> Iterator[WebServer]:
    """The review app on a real uvicorn server on loopback (in a thread)."""
    yield from start_web_server(clean_db)
