"""Read queries behind the review pages (the queue, search, one match)."""

from __future__ import annotations

from typing import Any

import psycopg

QUEUE_PAGE = 100

_QUEUE_SQL = """
SELECT m.id, m.score, m.evidence->>'method' AS method, m.created_at,
       l.title AS listing_title, l.url AS listing_url, s.name AS source,
       o.accession, o.collection, o.title AS object_title
FROM matches m
JOIN listings l ON l.id = m.listing_id
JOIN sources s ON s.id = l.source_id
JOIN objects o ON o.id = m.object_id
WHERE m.status = 'open'
ORDER BY m.score DESC, m.id
LIMIT %s OFFSET %s
"""


def queue(conn: psycopg.Connection, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    """One page of open matches, best first, and how many are open in all."""
    page = max(1, page)
    rows = conn.execute(_QUEUE_SQL, (QUEUE_PAGE, (page - 1) * QUEUE_PAGE)).fetchall()
    total = conn.execute("SELECT count(*) AS n FROM matches WHERE status = 'open'").fetchone()
    return rows, int(total["n"])


_SEARCH_SQL = """
SELECT m.id, m.score, m.status, m.evidence->>'method' AS method, m.created_at,
       l.title AS listing_title, l.url AS listing_url, s.name AS source,
       o.accession, o.collection, o.title AS object_title
FROM matches m
JOIN listings l ON l.id = m.listing_id
JOIN sources s ON s.id = l.source_id
JOIN objects o ON o.id = m.object_id
WHERE o.accession ILIKE %(like)s
   OR s.name ILIKE %(like)s
   OR l.url = %(q)s OR l.url ILIKE %(like)s
ORDER BY (o.accession = %(q)s OR l.url = %(q)s) DESC, m.score DESC, m.id
LIMIT 200
"""


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(conn: psycopg.Connection, q: str) -> list[dict[str, Any]]:
    """Matches by accession number, auction house name or listing URL (any status)."""
    q = q.strip()[:500]
    if not q:
        return []
    return conn.execute(_SEARCH_SQL, {"q": q, "like": _like(q)}).fetchall()


def match_header(conn: psycopg.Connection, match_id: int) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT m.id, m.listing_id, m.object_id, m.status, o.accession, l.title AS listing_title "
        "FROM matches m JOIN objects o ON o.id = m.object_id "
        "JOIN listings l ON l.id = m.listing_id WHERE m.id = %s",
        (match_id,),
    ).fetchone()


def listing_match_ids(conn: psycopg.Connection, listing_id: int) -> list[int]:
    return [
        r["id"] for r in conn.execute("SELECT id FROM matches WHERE listing_id = %s", (listing_id,))
    ]


def reviews_of_listing(conn: psycopg.Connection, listing_id: int) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT r.match_id, r.decision, r.note, r.created_at, v.email, v.name, o.accession "
        "FROM reviews r JOIN matches m ON m.id = r.match_id "
        "JOIN reviewers v ON v.id = r.reviewer_id JOIN objects o ON o.id = m.object_id "
        "WHERE m.listing_id = %s ORDER BY r.created_at DESC",
        (listing_id,),
    ).fetchall()


def recent_submissions(conn: psycopg.Connection, requested_by: str) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, url, status, error, created_at, listing_id FROM submissions "
        "WHERE requested_by = %s ORDER BY id DESC LIMIT 20",
        (requested_by,),
    ).fetchall()
