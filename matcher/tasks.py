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

from celery.signals import worker_init
from celery_batches import Batches, SimpleRequest

from artwatch.db import get_pool
from artwatch.images import ImageStore
from artwatch.queue import MATCH_IMAGES, MATCHER_QUEUE, RETROHUNT, SEND_URGENT, app
from artwatch.settings import get_settings
from matcher.catalogue_index import NotIndexed
from matcher.recognise import (
    ORIGINS,
    MatchPolicy,
    NoActiveBundle,
    Recogniser,
    active_bundle_row,
)

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


def policy_from(settings: Any) -> MatchPolicy:
    return MatchPolicy(
        top_k=settings.match_top_k,
        operating_point=settings.match_operating_point,
        candidate_floor=settings.match_candidate_floor,
    )


def check_active_bundle(conn: Any, settings: Any) -> str | None:
    """Why the active bundle cannot serve with these settings (None: it can, or none is active).

    Read from bundle.json only (no model loaded), so a worker can refuse to start at once
    instead of failing every batch: an operating point the bundle does not hold, a bundle
    without the calibrated score.
    """
    from matcher.bundle import BundleError, read_info
    from matcher.scoring import OperatingPointError, ScoreSpecError, check_spec, operating_point

    row = active_bundle_row(conn)
    if row is None:
        return None
    try:
        info = read_info(row["path"])
        check_spec(info.get("score"))
        operating_point(info.get("thresholds") or {}, settings.match_operating_point)
    except (BundleError, ScoreSpecError, OperatingPointError) as exc:
        return f"active bundle {row['name']!r}: {exc}"
    return None


@worker_init.connect
def _refuse_misconfiguration(sender: Any = None, **_: Any) -> None:
    """A matcher worker does not start against a bundle it could not serve with."""
    try:
        consumes = set(sender.app.amqp.queues.consume_from or {})
    except AttributeError:  # not a worker
        return
    if consumes and MATCHER_QUEUE not in consumes:
        return
    settings = get_settings()
    try:
        with get_pool().connection() as conn:
            problem = check_active_bundle(conn, settings)
    except Exception as exc:  # the database is down: the worker retries its batches later
        log.warning("could not check the active bundle at start: %s", exc)
        return
    if problem:
        log.critical("%s", problem)
        raise SystemExit(f"artwatch matcher: {problem}")


def recogniser_for(conn: Any) -> Recogniser:
    """The worker's recogniser, reloaded when the active bundle or catalogue changed."""
    key = _catalogue_version(conn)
    if _state["key"] != key or _state["recogniser"] is None:
        settings = get_settings()
        _state["recogniser"] = Recogniser.load(
            conn, ImageStore.from_settings(settings), policy_from(settings),
            device=settings.matcher_device, cache_dir=settings.local_features_dir,
        )
        _state["key"] = key
    return _state["recogniser"]


def _parse(request: SimpleRequest) -> tuple[list[int], int | None, str] | None:
    """(image ids, listing id, origin) of one message; None for a malformed one (logged)."""
    args, kwargs = list(request.args or ()), dict(request.kwargs or {})
    ids = kwargs.get("image_ids", args[0] if args else None)
    listing = kwargs.get("listing_id", args[1] if len(args) > 1 else None)
    origin = kwargs.get("origin", "live")
    try:
        if origin not in ORIGINS:
            raise ValueError(origin)
        return [int(i) for i in ids], (int(listing) if listing is not None else None), origin
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
        except (NoActiveBundle, NotIndexed) as exc:
            # Nothing is lost: `artwatch match pending` re-enqueues unpredicted photos later.
            log.error("%s; %d photo(s) left unmatched", exc, sum(len(p[0]) for p in parsed))
            return {"photos": 0, "listings": 0, "matches": 0}
        outcome = recogniser.handle(conn, parsed)
    if outcome["match_ids"]:  # the alerts stage decides which are urgent enough to send now
        app.send_task(SEND_URGENT, args=[outcome["match_ids"]])
    summary = {"photos": outcome["photos"], "listings": outcome["listings"],
               "matches": len(outcome["match_ids"])}
    log.info("matched batch of %d message(s): %s", len(requests), summary)
    return summary


def requeue_for_hunt(image_ids: list[int], listing_id: int) -> None:
    """A retro-hunt's photos without an embedding under the bundle: embed them in the
    background; their listing is decided (as a retro-hunt) when they are."""
    app.send_task(MATCH_IMAGES, args=[image_ids],
                  kwargs={"listing_id": listing_id, "origin": "retro-hunt"})


@app.task(name=RETROHUNT, acks_late=True)
def retrohunt(hunt_id: int) -> dict[str, int]:
    """Run (or resume) retro-hunt `hunt_id` (see matcher.retrohunt)."""
    from matcher.retrohunt import run_hunt

    with get_pool().connection() as conn:
        conn.autocommit = True
        recogniser = recogniser_for(conn)
        outcome = run_hunt(conn, recogniser, int(hunt_id), enqueue=requeue_for_hunt)
    if outcome["match_ids"]:
        app.send_task(SEND_URGENT, args=[outcome["match_ids"]])
    return {k: v for k, v in outcome.items() if k != "match_ids"}
