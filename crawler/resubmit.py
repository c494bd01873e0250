"""Run a pending manual submission: crawl its one lot now, even if seen, and re-queue photos.

Called by the `crawler.process_submission` Celery task and, in-process, by `artwatch submit`.
Idempotent on the submission: one that already finished is returned as it is.
"""

from __future__ import annotations

from artwatch.db import connect
from artwatch.submissions import SubmissionResult, source_for_url, submission_status
from crawler.middlewares import REFUSED_REDIRECT_STAT
from crawler.runner import run_crawl


def _fail(submission_id: int, error: str, crawl_id: int | None = None) -> None:
    with connect(autocommit=True) as conn:
        conn.execute(
            "UPDATE submissions SET status = 'failed', error = %s, crawl_id = %s, "
            "finished_at = now() WHERE id = %s",
            (error[:2000], crawl_id, submission_id),
        )


def process_submission(submission_id: int, *, timeout: float = 600) -> SubmissionResult:
    """Crawl the submitted URL (single-lot crawl, forced re-queue) and record the outcome."""
    with connect(autocommit=True) as conn:
        row = conn.execute("SELECT * FROM submissions WHERE id = %s", (submission_id,)).fetchone()
        if row is None:
            raise KeyError(f"no submission {submission_id}")
        if row["status"] != "pending":
            return submission_status(submission_id)
        source = source_for_url(conn, row["url"])
    if source is None:
        _fail(submission_id, "not_a_source: no configured source for this URL any more")
        return submission_status(submission_id)
    result = run_crawl(source["name"], trigger="manual", url=row["url"], force=True,
                       timeout=timeout)
    if result.status != "finished":
        _fail(submission_id, f"crawl failed: {result.error}", result.crawl_id)
        return submission_status(submission_id)
    with connect(autocommit=True) as conn:
        listing = conn.execute(
            "SELECT id FROM listings WHERE last_crawl_id = %s ORDER BY last_seen DESC LIMIT 1",
            (result.crawl_id,),
        ).fetchone()
        if listing is None:
            # A lot page that redirected somewhere the URL guard refuses says so.
            error = result.stats.get(REFUSED_REDIRECT_STAT) or "no lot found at this URL"
            conn.execute(
                "UPDATE submissions SET status = 'failed', crawl_id = %s, finished_at = now(), "
                "error = %s WHERE id = %s",
                (result.crawl_id, str(error)[:2000], submission_id),
            )
        else:
            conn.execute(
                "UPDATE submissions SET status = 'crawled', listing_id = %s, crawl_id = %s, "
                "finished_at = now(), error = NULL WHERE id = %s",
                (listing["id"], result.crawl_id, submission_id),
            )
    return submission_status(submission_id)
