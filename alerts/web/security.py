"""Sessions, CSRF tokens and response headers for the review app.

The session is Starlette's signed cookie (itsdangerous, keyed by the web secret); it holds
the reviewer id and a random CSRF token. Every state-changing request is a POST that must
carry that token in a form field (synchroniser-token pattern); a POST without a logged-in
reviewer is refused unless it carries a valid signed review link.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.datastructures import FormData
from starlette.requests import Request

SESSION_REVIEWER = "rid"
SESSION_CSRF = "csrf"

# Pages only load what the app serves itself; nothing may frame them; the signed tokens in
# review-link URLs never leak through a Referer header.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class CsrfError(Exception):
    pass


def csrf_token(request: Request) -> str:
    """This session's token, created on first use."""
    token = request.session.get(SESSION_CSRF)
    if not token:
        token = request.session[SESSION_CSRF] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, form: FormData) -> None:
    expected = request.session.get(SESSION_CSRF)
    sent = form.get("csrf_token")
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise CsrfError("missing or wrong CSRF token")


def login(request: Request, reviewer_id: int) -> None:
    """Start a fresh session (no fixation): new CSRF token, the reviewer's id."""
    request.session.clear()
    request.session[SESSION_REVIEWER] = reviewer_id
    request.session[SESSION_CSRF] = secrets.token_urlsafe(32)


def logout(request: Request) -> None:
    request.session.clear()


def reviewer_id(request: Request) -> int | None:
    value = request.session.get(SESSION_REVIEWER)
    return value if isinstance(value, int) else None


def safe_next(value: str | None) -> str:
    """Only same-site paths after login (no open redirect to //evil.example)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
