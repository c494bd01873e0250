"""Manual resubmission of one listing URL: validate -> `submissions` row -> crawl it now.

This is the one entry point for both the CLI (`artwatch submit URL`) and the review web
app. A URL is accepted only if it is http(s), belongs to a configured source (same host and
port as one of the source's start URLs) and passes the SSRF guard under that source's
`allow_private` flag. Every submission leaves a row, refused ones included (status `failed`
with the reason), so nothing a reviewer asked for disappears silently.

    result = submit_url("https://house.example/lot/123", requested_by="alice@museum.org")
    if not result.ok:
        show(result.error)            # refused: clear reason, row recorded
    # else: result.submission_id is queued (the crawler's worker runs it)

The crawl itself runs in the crawler stage (task `crawler.process_submission`, or
`crawler.resubmit.process_submission` in-process for the CLI); it crawls that one lot even
if already seen and sends its photos to the matcher again. `submission_status()` and
`matches_for_listing()` read back what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from artwatch.db import connect
from artwatch.queue import PROCESS_SUBMISSION
from artwatch.urlsafety import UnsafeURL, check_url, netloc_of, parse_url

MAX_URL_LENGTH = 2048


@dataclass
class SubmissionResult:
    """Where a submission stands. `status`: pending | crawled | matched | failed."""

    submission_id: int | None
    url: str
    status: str
    source: str | None = None
    listing_id: int | None = None
    crawl_id: int | None = None
    error: str | None = None
    photos: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)  # the listing's, if crawled

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def source_for_url(conn: psycopg.Connection, url: str) -> dict[str, Any] | None:
    """The configured source whose start URLs share this URL's host and port, if any."""
    netloc = netloc_of(url)
    if not netloc:
        return None
    for row in conn.execute("SELECT * FROM sources ORDER BY id"):
        if netloc in {netloc_of(u) for u in row["start_urls"]}:
            return row
    return None


def _validate(conn: psycopg.Connection, url: str) -> tuple[dict[str, Any] | None, str | None]:
    if len(url) > MAX_URL_LENGTH:
        return None, f"URL longer than {MAX_URL_LENGTH} characters"
    try:
        parse_url(url)  # scheme and syntax first: no lookup for a URL we would never fetch
    except UnsafeURL as exc:
        return None, f"{exc.reason}: {exc.detail}"
    source = source_for_url(conn, url)
    if source is None:
        return None, f"not_a_source: {netloc_of(url)} is not the site of any configured source"
    allowed = {netloc_of(u) for u in source["start_urls"]} if source["allow_private"] else set()
    try:
        check_url(url, allow_private=allowed)
    except UnsafeURL as exc:
        return source, f"{exc.reason}: {exc.detail}"
    return source, None


def submit_url(url: str, requested_by: str, *, enqueue: bool = True) -> SubmissionResult:
    """Record a request to (re)crawl one listing URL now and, if valid, queue its crawl.

    Returns at once. With `enqueue=False` the row is left `pending` for the caller to run
    (`crawler.resubmit.process_submission(result.submission_id)`), as the CLI does.
    Refused URLs come back with status `failed` and the reason in `error`; they are
    recorded too.
    """
    url = (url or "").strip()
    with connect(autocommit=True) as conn:
        source, error = _validate(conn, url)
        row = conn.execute(
            """
            INSERT INTO submissions (url, requested_by, status, error, finished_at)
            VALUES (%s, %s, %s, %s, CASE WHEN %s THEN now() END)
            RETURNING id
            """,
            (url[:MAX_URL_LENGTH] or "-", requested_by or "unknown",
             "failed" if error else "pending", error, error is not None),
        ).fetchone()
    result = SubmissionResult(
        submission_id=int(row["id"]),
        url=url,
        status="failed" if error else "pending",
        source=source["name"] if source else None,
        error=error,
    )
    if error is None and enqueue:
        from artwatch.queue import app

        app.send_task(PROCESS_SUBMISSION, args=[result.submission_id])
    return result


def submission_status(submission_id: int) -> SubmissionResult:
    """The submission as it stands now, with the listing's photos (and what could not be
    read from its page: `problems`, see crawler/problems.py) once crawled."""
    with connect() as conn:
        row = conn.execute(
            "SELECT s.*, src.name AS source_name, l.problems FROM submissions s "
            "LEFT JOIN listings l ON l.id = s.listing_id "
            "LEFT JOIN sources src ON src.id = l.source_id WHERE s.id = %s",
            (submission_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no submission {submission_id}")
        photos = []
        if row["listing_id"]:
            photos = conn.execute(
                "SELECT url, status, image_id, error, queued_at FROM listing_images "
                "WHERE listing_id = %s ORDER BY position, id",
                (row["listing_id"],),
            ).fetchall()
    return SubmissionResult(
        submission_id=int(row["id"]),
        url=row["url"],
        status=row["status"],
        source=row["source_name"],
        listing_id=row["listing_id"],
        crawl_id=row["crawl_id"],
        error=row["error"],
        photos=list(photos),
        problems=list(row["problems"] or []),
    )


def matches_for_listing(conn: psycopg.Connection, listing_id: int) -> list[dict[str, Any]]:
    """Suspected matches the matcher wrote for a listing, best first."""
    return conn.execute(
        """
        SELECT m.id, m.score, m.rank, m.status, m.evidence, o.accession, o.collection, o.title
        FROM matches m JOIN objects o ON o.id = m.object_id
        WHERE m.listing_id = %s ORDER BY m.rank, m.score DESC
        """,
        (listing_id,),
    ).fetchall()
