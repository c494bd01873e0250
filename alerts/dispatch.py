"""From open matches to delivered alerts, exactly once per (match, reviewer).

Two steps, each its own transaction:

1. prepare: for every active reviewer, an `alerts` row (status pending, Message-ID fixed
   now) and one `alert_items` row per match not yet alerted to them. The unique
   (match_id, reviewer_id) key makes this idempotent and safe to run concurrently: a
   match is claimed for a reviewer by exactly one alert, and never again.
2. deliver: each pending alert is locked (`FOR UPDATE SKIP LOCKED`, so two workers never
   send the same one), rendered, sent with retries, and marked sent in the same
   transaction that held the lock.

A crash after step 1 leaves a pending alert that the next run delivers (nothing dropped);
a crash during step 2 rolls back to pending and the next run resends it with the same
Message-ID. The one window where a duplicate is possible is between the SMTP server's
final "250 OK" and our COMMIT (milliseconds); the fixed Message-ID lets mail software
recognise that copy. Matches a reviewer has dismissed or confirmed, including the same
listing/object pair found by another model bundle, are never alerted again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.utils import make_msgid

import psycopg

from alerts.keys import web_secret
from alerts.links import ReviewLinks
from alerts.model import load_listing_views
from alerts.render import Digest, EmbeddedImages, Recipient, build_message, render_html
from alerts.thumbs import Thumbnailer
from alerts.transport import DeliveryError, Transport, send_with_retries, transport_from_settings
from artwatch.db import connect, database_url
from artwatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

MAX_TOTAL_ATTEMPTS = 12  # over all runs; then the alert is marked failed for a human to look at

# Open matches this reviewer has not been alerted to, whose listing/object pair nobody has
# reviewed yet (a dismissed pair stays dismissed even when a new bundle finds it again).
_CLAIM_SQL = """
INSERT INTO alert_items (alert_id, match_id, reviewer_id)
SELECT %(alert_id)s, m.id, %(reviewer_id)s
FROM matches m
WHERE m.status = 'open'
  AND m.score >= %(min_score)s
  AND (%(match_ids)s::bigint[] IS NULL OR m.id = ANY(%(match_ids)s::bigint[]))
  AND NOT EXISTS (SELECT 1 FROM alert_items ai
                  WHERE ai.match_id = m.id AND ai.reviewer_id = %(reviewer_id)s)
  AND NOT EXISTS (SELECT 1 FROM matches d
                  WHERE d.listing_id = m.listing_id AND d.object_id = m.object_id
                    AND d.status <> 'open')
ON CONFLICT DO NOTHING
"""


@dataclass
class RunReport:
    prepared: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "prepared": len(self.prepared),
            "sent": len(self.sent),
            "failed": len(self.failed),
            "deferred": len(self.deferred),
            "errors": self.errors,
        }


def prepare_alerts(
    conn: psycopg.Connection,
    kind: str = "digest",
    *,
    min_score: float = 0.0,
    match_ids: list[int] | None = None,
) -> list[int]:
    """Create one pending alert per reviewer with something new; return their ids."""
    if kind not in ("digest", "urgent"):
        raise ValueError(f"unknown alert kind {kind!r}")
    reviewers = conn.execute(
        "SELECT id FROM reviewers WHERE active AND email <> '' ORDER BY id"
    ).fetchall()
    created: list[int] = []
    for reviewer in reviewers:
        with conn.transaction():
            alert_id = conn.execute(
                "INSERT INTO alerts (reviewer_id, kind, message_id) VALUES (%s, %s, %s) "
                "RETURNING id",
                (reviewer["id"], kind, make_msgid(idstring=kind, domain="artwatch.local")),
            ).fetchone()["id"]
            claimed = conn.execute(
                _CLAIM_SQL,
                {
                    "alert_id": alert_id,
                    "reviewer_id": reviewer["id"],
                    "min_score": min_score,
                    "match_ids": list(match_ids) if match_ids is not None else None,
                },
            ).rowcount
            if claimed == 0:
                conn.execute("DELETE FROM alerts WHERE id = %s", (alert_id,))
            else:
                created.append(alert_id)
    return created


def load_digest(conn: psycopg.Connection, alert_id: int, top_k: int,
                operating_point: str | None = None) -> Digest | None:
    """The alert's content: its matches still open, grouped by listing."""
    alert = conn.execute(
        "SELECT a.id, a.kind, a.message_id, a.created_at, r.id AS rid, r.email, r.name "
        "FROM alerts a JOIN reviewers r ON r.id = a.reviewer_id WHERE a.id = %s",
        (alert_id,),
    ).fetchone()
    if alert is None:
        return None
    ids = [
        r["match_id"]
        for r in conn.execute(
            "SELECT ai.match_id FROM alert_items ai JOIN matches m ON m.id = ai.match_id "
            "WHERE ai.alert_id = %s AND m.status = 'open'",
            (alert_id,),
        )
    ]
    return Digest(
        alert_id=alert["id"],
        kind=alert["kind"],
        message_id=alert["message_id"],
        reviewer=Recipient(alert["rid"], alert["email"], alert["name"]),
        listings=load_listing_views(conn, ids, top_k=top_k, operating_point=operating_point),
        created_at=alert["created_at"],
    )


class Dispatcher:
    """Delivers pending alerts through one transport."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: Transport | None = None,
        db_url: str | None = None,
        retry_attempts: int = 4,
        retry_base_delay_s: float = 1.0,
    ) -> None:
        self.settings = settings or get_settings()
        self.transport = transport or transport_from_settings(self.settings)
        self.db_url = db_url or database_url(self.settings)
        self.retry_attempts = retry_attempts
        self.retry_base_delay_s = retry_base_delay_s
        self.links = ReviewLinks(
            web_secret(self.settings),
            self.settings.web_base_url,
            self.settings.review_link_max_age_s,
        )
        self.thumbnailer = Thumbnailer.from_settings(self.settings)

    def prepare(self, kind: str, **kwargs: object) -> list[int]:
        with connect(self.db_url, autocommit=True) as conn:
            return prepare_alerts(conn, kind, **kwargs)  # type: ignore[arg-type]

    def deliver_pending(self, report: RunReport | None = None) -> RunReport:
        """Send every pending alert that is due; each under its own row lock."""
        report = report or RunReport()
        done: list[int] = []
        while True:
            with connect(self.db_url) as conn:  # one transaction per alert
                row = conn.execute(
                    "SELECT id, attempts FROM alerts WHERE status = 'pending' "
                    "AND (next_attempt_at IS NULL OR next_attempt_at <= now()) "
                    "AND NOT (id = ANY(%s)) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    (done,),
                ).fetchone()
                if row is None:
                    return report
                done.append(row["id"])
                self._deliver_locked(conn, row["id"], row["attempts"], report)
                conn.commit()

    def _deliver_locked(
        self, conn: psycopg.Connection, alert_id: int, attempts: int, report: RunReport
    ) -> None:
        try:
            digest = load_digest(conn, alert_id, self.settings.alert_top_k,
                                 self.settings.match_operating_point)
            assert digest is not None
            if not digest.listings:
                conn.execute(
                    "UPDATE alerts SET status = 'sent', sent_at = now(), "
                    "error = 'skipped: every match was reviewed before delivery' WHERE id = %s",
                    (alert_id,),
                )
                return
            message = build_message(digest, self.links, self.thumbnailer, self.settings.mail_from)
            page = None
            if self.transport.name == "outbox":
                page = render_html(
                    digest, self.links, EmbeddedImages(self.thumbnailer), inline=False
                )
            used = send_with_retries(
                self.transport,
                message,
                page,
                attempts=self.retry_attempts,
                base_delay_s=self.retry_base_delay_s,
            )
        except DeliveryError as exc:
            total = attempts + getattr(exc, "attempts", 1)
            final = exc.permanent or total >= MAX_TOTAL_ATTEMPTS
            conn.execute(
                "UPDATE alerts SET attempts = %s, error = %s, status = %s, "
                "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                (total, str(exc)[:2000], "failed" if final else "pending",
                 min(3600, 60 * 2 ** min(total, 6)), alert_id),
            )
            (report.failed if final else report.deferred).append(alert_id)
            report.errors.append(f"alert {alert_id}: {exc}")
            log.error("alert %s not delivered: %s", alert_id, exc)
            return
        except Exception as exc:  # a bug or bad row must not block the other alerts
            conn.rollback()
            conn.execute(
                "UPDATE alerts SET attempts = attempts + 1, error = %s, "
                "next_attempt_at = now() + interval '10 minutes' WHERE id = %s",
                (f"internal error: {type(exc).__name__}: {exc}"[:2000], alert_id),
            )
            report.deferred.append(alert_id)
            report.errors.append(f"alert {alert_id}: {type(exc).__name__}: {exc}")
            log.exception("alert %s could not be built", alert_id)
            return
        conn.execute(
            "UPDATE alerts SET status = 'sent', sent_at = now(), attempts = attempts + %s, "
            "error = NULL, delivered_via = %s WHERE id = %s",
            (used, self.transport.name, alert_id),
        )
        report.sent.append(alert_id)

    def run(self, kind: str = "digest", **kwargs: object) -> RunReport:
        """Deliver leftovers first (a crashed run's alerts), then prepare and deliver new ones."""
        report = self.deliver_pending()
        report.prepared = self.prepare(kind, **kwargs)
        return self.deliver_pending(report)


def send_digests(settings: Settings | None = None, **kwargs: object) -> RunReport:
    return Dispatcher(settings, **kwargs).run("digest")  # type: ignore[arg-type]


def send_urgent(
    match_ids: list[int] | None = None, settings: Settings | None = None, **kwargs: object
) -> RunReport:
    settings = settings or get_settings()
    return Dispatcher(settings, **kwargs).run(  # type: ignore[arg-type]
        "urgent", min_score=settings.alert_urgent_score, match_ids=match_ids
    )
