"""Server-side sign-in sessions: one `web_sessions` row per sign-in.

The browser's cookie (Starlette's signed session cookie) carries a random token; the row
keyed by the token's sha256 says whether that sign-in still stands. A cookie alone never
signs anyone in: logging out ends the row, and changing a reviewer's password or
disabling the reviewer ends every row of theirs, so a cookie copied before any of these
stops working at the next request instead of at its expiry.

Why not a session library: starsessions (the Starlette server-side session package)
2.2.1, its latest release, adopts a session id the client makes up and keeps the
pre-login session's data when the id is regenerated (fixed only in an unreleased
2.3 alpha). Here tokens are only ever made by the server, and Starlette's own signed
cookie (itsdangerous) does the cookie work.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from alerts.reviewers import Reviewer

END_REASONS = ("logout", "password_changed", "disabled")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start_session(
    conn: psycopg.Connection, reviewer_id: int, max_age_s: int, client: str = ""
) -> str:
    """Record a new sign-in; return its token (43 URL-safe characters, 256 random bits)."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO web_sessions (token_sha256, reviewer_id, client, expires_at) "
        "VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
        (_digest(token), reviewer_id, client[:200], max_age_s),
    )
    return token


def session_reviewer(conn: psycopg.Connection, token: str) -> Reviewer | None:
    """The active reviewer of a live session, or None (ended, expired, unknown, disabled)."""
    from alerts.reviewers import row_to_reviewer  # reviewers ends sessions: import here

    row = conn.execute(
        """
        SELECT r.id, r.email, r.name, r.team, r.active
          FROM web_sessions s JOIN reviewers r ON r.id = s.reviewer_id
         WHERE s.token_sha256 = %s AND s.ended_at IS NULL AND s.expires_at > now()
           AND r.active
        """,
        (_digest(token),),
    ).fetchone()
    return row_to_reviewer(row) if row else None


def end_session(conn: psycopg.Connection, token: str, reason: str = "logout") -> bool:
    """End one session (logout); True if it was live."""
    cur = conn.execute(
        "UPDATE web_sessions SET ended_at = now(), end_reason = %s "
        "WHERE token_sha256 = %s AND ended_at IS NULL",
        (reason, _digest(token)),
    )
    return cur.rowcount == 1


def end_reviewer_sessions(conn: psycopg.Connection, reviewer_id: int, reason: str) -> int:
    """End every live session of a reviewer (password changed, account disabled); how many."""
    if reason not in END_REASONS:
        raise ValueError(f"unknown end reason {reason!r}")
    cur = conn.execute(
        "UPDATE web_sessions SET ended_at = now(), end_reason = %s "
        "WHERE reviewer_id = %s AND ended_at IS NULL",
        (reason, reviewer_id),
    )
    return cur.rowcount


def prune_sessions(conn: psycopg.Connection, keep_days: int = 30) -> int:
    """Forget sessions that ended or expired more than `keep_days` ago; how many."""
    cur = conn.execute(
        "DELETE FROM web_sessions WHERE coalesce(ended_at, expires_at) "
        "< now() - make_interval(days => %s)",
        (keep_days,),
    )
    return cur.rowcount
