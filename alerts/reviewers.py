"""Reviewer accounts: who receives digests and may confirm or dismiss matches.

Changing a reviewer's password (`add_reviewer` on an existing account, `set_password`) or
disabling the reviewer ends every web session of theirs in the same transaction, so a
stolen or forgotten signed-in browser loses access at its next request.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from alerts.passwords import hash_password, needs_rehash, verify_password
from alerts.sessions import end_reviewer_sessions


@dataclass(frozen=True)
class Reviewer:
    id: int
    email: str
    name: str
    team: str | None
    active: bool


def row_to_reviewer(row: dict) -> Reviewer:
    return Reviewer(row["id"], row["email"], row["name"], row["team"], row["active"])


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or not domain or " " in email:
        raise ValueError(f"not an e-mail address: {email!r}")
    return email


def add_reviewer(
    conn: psycopg.Connection,
    email: str,
    password: str | None,
    *,
    name: str = "",
    team: str | None = None,
) -> Reviewer:
    """Create the account, or update name/team/password and re-activate it if it exists.

    `password=None` makes a mail-only recipient (no login): a team's mailing list gets the
    digests, and its members act through the signed links in them. Resetting an existing
    account's password ends all of its web sessions.
    """
    password_hash = hash_password(password) if password else None
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO reviewers (email, name, password_hash, team) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, "
            "password_hash = EXCLUDED.password_hash, team = EXCLUDED.team, active = true "
            "RETURNING id, email, name, team, active, (xmax = 0) AS inserted",
            (normalise_email(email), name, password_hash, team),
        ).fetchone()
        if not row["inserted"]:
            end_reviewer_sessions(conn, row["id"], "password_changed")
    return row_to_reviewer(row)


def set_password(conn: psycopg.Connection, email: str, password: str) -> bool:
    """Change a reviewer's password and end all their web sessions; False if no such reviewer.

    Raises WeakPassword for a password shorter than `passwords.MIN_LENGTH`.
    """
    password_hash = hash_password(password)
    with conn.transaction():
        row = conn.execute(
            "UPDATE reviewers SET password_hash = %s WHERE email = %s RETURNING id",
            (password_hash, normalise_email(email)),
        ).fetchone()
        if row is None:
            return False
        end_reviewer_sessions(conn, row["id"], "password_changed")
    return True


def list_reviewers(conn: psycopg.Connection) -> list[Reviewer]:
    rows = conn.execute("SELECT id, email, name, team, active FROM reviewers ORDER BY id")
    return [row_to_reviewer(r) for r in rows]


def set_active(conn: psycopg.Connection, email: str, active: bool) -> bool:
    """Enable or disable a reviewer (disabling ends their web sessions); False if unknown."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE reviewers SET active = %s WHERE email = %s RETURNING id",
            (active, normalise_email(email)),
        ).fetchone()
        if row is None:
            return False
        if not active:
            end_reviewer_sessions(conn, row["id"], "disabled")
    return True


def get_reviewer(conn: psycopg.Connection, reviewer_id: int) -> Reviewer | None:
    row = conn.execute(
        "SELECT id, email, name, team, active FROM reviewers WHERE id = %s", (reviewer_id,)
    ).fetchone()
    return row_to_reviewer(row) if row else None


def authenticate(conn: psycopg.Connection, email: str, password: str) -> Reviewer | None:
    """The active reviewer with these credentials, or None (same cost for unknown e-mails)."""
    try:
        email = normalise_email(email)
    except ValueError:
        email = ""
    row = conn.execute(
        "SELECT id, email, name, team, active, password_hash FROM reviewers WHERE email = %s",
        (email,),
    ).fetchone()
    stored = row["password_hash"] if row else None
    if not verify_password(stored, password) or not row or not row["active"]:
        return None
    if needs_rehash(stored):
        conn.execute(
            "UPDATE reviewers SET password_hash = %s WHERE id = %s",
            (hash_password(password), row["id"]),
        )
    return row_to_reviewer(row)
