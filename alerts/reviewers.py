"""Reviewer accounts: who receives digests and may confirm or dismiss matches."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from alerts.passwords import hash_password, needs_rehash, verify_password


@dataclass(frozen=True)
class Reviewer:
    id: int
    email: str
    name: str
    team: str | None
    active: bool


def _row(row: dict) -> Reviewer:
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
    digests, and its members act through the signed links in them.
    """
    row = conn.execute(
        "INSERT INTO reviewers (email, name, password_hash, team) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, "
        "password_hash = EXCLUDED.password_hash, team = EXCLUDED.team, active = true "
        "RETURNING id, email, name, team, active",
        (normalise_email(email), name, hash_password(password) if password else None, team),
    ).fetchone()
    return _row(row)


def list_reviewers(conn: psycopg.Connection) -> list[Reviewer]:
    rows = conn.execute("SELECT id, email, name, team, active FROM reviewers ORDER BY id")
    return [_row(r) for r in rows]


def set_active(conn: psycopg.Connection, email: str, active: bool) -> bool:
    cur = conn.execute(
        "UPDATE reviewers SET active = %s WHERE email = %s", (active, normalise_email(email))
    )
    return cur.rowcount == 1


def get_reviewer(conn: psycopg.Connection, reviewer_id: int) -> Reviewer | None:
    row = conn.execute(
        "SELECT id, email, name, team, active FROM reviewers WHERE id = %s", (reviewer_id,)
    ).fetchone()
    return _row(row) if row else None


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
    return _row(row)
