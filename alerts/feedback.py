"""Reviewer decisions: confirm or dismiss a match, with a note, kept with who and when.

The decision is a `reviews` row (one per match and reviewer; a reviewer may change their
mind, the row is updated) and the match's status. The same listing/object pair found by
another model bundle takes the same status, so it leaves the queue too; the digest query
never alerts a pair with a non-open match again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

STATUS_FOR = {"confirm": "confirmed", "dismiss": "dismissed"}
MAX_NOTE = 4000


class UnknownMatch(LookupError):
    pass


@dataclass(frozen=True)
class Decision:
    match_id: int
    reviewer_id: int
    decision: str
    status: str
    note: str
    at: datetime


def record_decision(
    conn: psycopg.Connection, match_id: int, reviewer_id: int, decision: str, note: str = ""
) -> Decision:
    if decision not in STATUS_FOR:
        raise ValueError(f"decision must be confirm or dismiss, not {decision!r}")
    note = (note or "").strip()[:MAX_NOTE]
    status = STATUS_FOR[decision]
    with conn.transaction():
        match = conn.execute(
            "SELECT id, listing_id, object_id FROM matches WHERE id = %s FOR UPDATE",
            (match_id,),
        ).fetchone()
        if match is None:
            raise UnknownMatch(f"no match {match_id}")
        review = conn.execute(
            "INSERT INTO reviews (match_id, reviewer_id, decision, note) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (match_id, reviewer_id) DO UPDATE SET decision = EXCLUDED.decision, "
            "note = EXCLUDED.note, created_at = now() RETURNING created_at",
            (match_id, reviewer_id, decision, note),
        ).fetchone()
        conn.execute(
            "UPDATE matches SET status = %s, updated_at = now() "
            "WHERE listing_id = %s AND object_id = %s",
            (status, match["listing_id"], match["object_id"]),
        )
    return Decision(match_id, reviewer_id, decision, status, note, review["created_at"])
