"""The matcher's Celery task: batched recognition of listing photos.

`matcher.match_images(image_ids, listing_id=None)` messages are buffered by celery-batches
and handled together, so a GPU sees one large batch instead of many single photos. Run one
worker process per GPU on the `matcher` queue with a prefetch of at least the batch size:

    celery -A artwatch.queue worker -Q matcher --concurrency 1 --prefetch-multiplier 64

Messages are acknowledged after the batch is written (acks_late); every write is an upsert,
so a batch redelivered after a crash changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from celery_batches import Batches, SimpleRequest

from artwatch.db import get_pool
from artwatch.images import ImageStore
from artwatch.queue import MATCH_IMAGES, SEND_URGENT, app
from artwatch.settings import get_settings
from matcher.recognise import MatchPolicy, NoActiveBundle, Recogniser

log = logging.getLogger(__name__)

_state: dict[str, Any] = {"key": None, "recogniser": None}


def _catalogue_version(conn: Any) -> tuple[Any, ...]:
    """Changes whenever the recogniser must be reloaded (new bundle, catalogue photos).

    Only catalogue embeddings count: the matcher's own listing embeddings must not force a
    reload after every batch.
    """
    row = conn.execute(
        """
        SELECT (SELECT id FROM bundles WHERE active) AS bundle_id,
               (SELECT count(*) FROM embeddings e
                  JOIN bundles b ON b.id = e.bundle_id AND b.active
                  JOIN object_images oi ON oi.image_id = e.image_id) AS embedded,
               (SELECT count(*) FROM object_images) AS photos
        """
    ).fetchone()
    return (row["bundle_id"], row["embedded"], row["photos"])


def recogniser_for(conn: Any) -> Recogniser:
    """The worker's recogniser, reloaded when the active bundle or catalogue changed."""
    key = _catalogue_version(conn)
    if _state["key"] != key or _state["recogniser"] is None:
        settings = get_settings()
        policy = MatchPolicy(
            top_k=settings.match_top_k,
            operating_point=settings.match_operating_point,
            retrieval_threshold=settings.match_retrieval_threshold,
            phash_max_distance=settings.match_phash_distance,
        )
        _state["recogniser"] = Recogniser.load(
            conn, ImageStore.from_settings(settings), policy, device=settings.matcher_device
        )
        _state["key"] = key
    return _state["recogniser"]


def _parse(request: SimpleRequest) -> tuple[list[int], int | None] | None:
    """(image ids, listing id) of one message; None for a malformed one (logged, dropped)."""
    args, kwargs = list(request.args or ()), dict(request.kwargs or {})
    ids = kwargs.get("image_ids", args[0] if args else None)
    listing = kwargs.get("listing_id", args[1] if len(args) > 1 else None)
    try:
        return [int(i) for i in ids], (int(listing) if listing is not None else None)
    except (TypeError, ValueError):
        log.error("malformed %s message %s: args=%r kwargs=%r", MATCH_IMAGES, request.id,
                  request.args, request.kwargs)
        return None


@app.task(name=MATCH_IMAGES, base=Batches, flush_every=64, flush_interval=1, acks_late=True)
def match_images(requests: list[SimpleRequest]) -> dict[str, int]:
    """Recognise the photos of a batch of messages and score their listings."""
    parsed = [p for p in (_parse(r) for r in requests) if p is not None]
    with get_pool().connection() as conn:
        conn.autocommit = True
        try:
            recogniser = recogniser_for(conn)
        except NoActiveBundle as exc:
            # Nothing is lost: `artwatch match pending` re-enqueues unpredicted photos later.
            log.error("%s; %d photo(s) left unmatched", exc, sum(len(i) for i, _ in parsed))
            return {"photos": 0, "listings": 0, "matches": 0}
        outcome = recogniser.handle(conn, parsed)
    if outcome["match_ids"]:  # the alerts stage decides which are urgent enough to send now
        app.send_task(SEND_URGENT, args=[outcome["match_ids"]])
    summary = {"photos": outcome["photos"], "listings": outcome["listings"],
               "matches": len(outcome["match_ids"])}
    log.info("matched batch of %d message(s): %s", len(requests), summary)
    return summary
