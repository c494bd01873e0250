"""Helpers shared by the alerts tests: a recording SMTP handler, a free loopback port,
signing in to the review app over HTTP."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class Mailbox:
    """What the SMTP server accepted; `fail_next` makes it answer 451 that many times."""

    messages: list[EmailMessage] = field(default_factory=list)
    fail_next: int = 0
    attempts: int = 0
    auth: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        with self.lock:
            self.attempts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return "451 4.3.0 try again later"
            msg = message_from_bytes(envelope.content, policy=policy.default)
            self.messages.append(msg)
        return "250 OK"

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def csrf_of(html: str) -> str:
    """The CSRF token a page's form carries."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, email: str, password: str, next_page: str = "/"):
    """POST the sign-in form as a browser would (GET for the CSRF token first)."""
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token,
                        "next": next_page}
    )
