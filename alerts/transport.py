"""Getting a message out: SMTP (STARTTLS / SSL / plain, with login) or the outbox directory.

Retries: connection errors and 4xx replies are transient and retried with exponential
back-off; 5xx replies (bad recipient, refused sender) are permanent and raised at once, so
a wrong address does not hammer the server. With no SMTP host configured (the embedded
default) messages go to `outbox_dir` as `<name>.eml` plus the `.html` page.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from artwatch.files import write_atomic
from artwatch.settings import Settings

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """Sending failed; `permanent` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    name: str

    def send(self, message: EmailMessage, html_page: str | None = None) -> None: ...


def _is_permanent(exc: BaseException) -> bool:
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        return bool(codes) and all(500 <= c < 600 for c in codes)
    if isinstance(exc, smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError):
        return True
    return isinstance(code, int) and 500 <= code < 600


class SmtpTransport:
    """One SMTP session per message (digests are few; a long-lived session gains nothing)."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        ca_file: Path | None = None,
    ) -> None:
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"smtp security must be starttls, ssl or none, not {security!r}")
        self.host, self.port, self.security = host, port, security
        self.user, self.password, self.timeout_s = user, password, timeout_s
        self.ca_file = ca_file

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTransport:
        assert settings.smtp_host
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_s=settings.smtp_timeout_s,
            ca_file=settings.smtp_ca_file,
        )

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def send(self, message: EmailMessage, html_page: str | None = None) -> None:
        try:
            if self.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=self._context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                client.ehlo()
                if self.security == "starttls":
                    client.starttls(context=self._context())
                    client.ehlo()
                if self.user:
                    client.login(self.user, self.password or "")
                refused = client.send_message(message)
                if refused:
                    log.warning("some recipients refused: %s", refused)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}",
                permanent=_is_permanent(exc),
            ) from exc


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def outbox_name(message: EmailMessage) -> str:
    """A file name from the Message-ID: the same alert always lands in the same file."""
    return _UNSAFE.sub("_", str(message["Message-ID"]).strip("<>"))[:150]


class OutboxTransport:
    """Write `.eml` (the exact message) and `.html` (the page) files; rewriting is harmless."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def send(self, message: EmailMessage, html_page: str | None = None) -> None:
        base = outbox_name(message)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if html_page is not None:
                write_atomic(self.directory / f"{base}.html", html_page.encode("utf-8"))
            write_atomic(self.directory / f"{base}.eml", message.as_bytes())
        except OSError as exc:
            raise DeliveryError(f"outbox {self.directory}: {exc}", permanent=False) from exc


def transport_from_settings(settings: Settings) -> Transport:
    if settings.smtp_host:
        return SmtpTransport.from_settings(settings)
    return OutboxTransport(settings.outbox_dir)


def send_with_retries(
    transport: Transport,
    message: EmailMessage,
    html_page: str | None = None,
    *,
    attempts: int = 4,
    base_delay_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send, retrying transient failures with back-off (1, 2, 4 s...); return attempts used."""
    for attempt in range(1, attempts + 1):
        try:
            transport.send(message, html_page)
            return attempt
        except DeliveryError as exc:
            if exc.permanent or attempt == attempts:
                exc.attempts = attempt  # type: ignore[attr-defined]
                raise
            delay = base_delay_s * 2 ** (attempt - 1)
            log.warning("send attempt %d failed (%s); retrying in %.1fs", attempt, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")
