"""Session cookie contents, CSRF tokens and response headers for the review app.

The cookie is Starlette's signed session cookie (itsdangerous, keyed by the web secret); it
holds a random CSRF token and, once signed in, the token of a server-side session
(`alerts.sessions`: the `web_sessions` row decides whether it still signs anyone in).
Every state-changing request is a POST that must carry the CSRF token in a form field
(synchroniser-token pattern); a POST without a signed-in reviewer is refused unless it
carries a valid signed review link.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.datastructures import FormData
from starlette.requests import Request

SESSION_TOKEN = "sid"
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


def login(request: Request, session_token: str) -> None:
    """Start a fresh cookie (no fixation): new CSRF token, the new server session's token."""
    request.session.clear()
    request.session[SESSION_TOKEN] = session_token
    request.session[SESSION_CSRF] = secrets.token_urlsafe(32)


def logout(request: Request) -> None:
    """Forget everything in the cookie (the server-side session is ended separately)."""
    request.session.clear()


def session_token(request: Request) -> str | None:
    value = request.session.get(SESSION_TOKEN)
    return value if isinstance(value, str) and value else None


def safe_next(value: str | None) -> str:
    """Only same-site paths after login (no open redirect to //evil.example)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
