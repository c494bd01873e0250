"""The matcher's Celery tasks: batched recognition of listing photos, and the sweeper.

`matcher.match_images(image_ids, listing_id=None, origin="live")` messages are buffered by
celery-batches
(`matcher.batches.MatcherBatches`) and handled together, so the model sees one large batch
instead of many single photos. Run one worker per GPU (or machine) on the `matcher` queue:

    celery -A artwatch.queue worker -Q matcher --concurrency 1

The batch size and flush interval come from settings, and the worker's prefetch is set from
them when it starts (`artwatch.queue`), so no flag has to match them.

Nothing is lost, nothing is done twice:

* messages are acknowledged after the batch is written (late ack); every write is an upsert,
  so a message delivered twice changes nothing;
* a batch that cannot reach PostgreSQL waits with back-off (`ARTWATCH_MATCHER_DB_RETRY_S`)
  and then hands its messages back to the queue instead of acknowledging them;
* a message whose arguments break the contract (ids must be JSON integers: not "123", not
  true, not 1.9, not Infinity) is moved to the dead letters, and the rest of its batch goes on;
* a photo that can never be decoded is marked failed with its reason, once;
* `matcher.sweep` (beat) re-queues whatever a kill, an outage or a lost message left undone
  (`matcher.sweeper`).

A worker refuses to start when the active bundle cannot serve with its settings (an operating
point the bundle does not hold, a bundle without the calibrated score), naming the setting and
the valid points. `matcher.retrohunt(hunt_id)` re-scores stored listings (`matcher.retrohunt`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import worker_init
from celery_batches import SimpleRequest

from artwatch import deadletters
from artwatch.db import get_pool
from artwatch.db.retry import DB_UNAVAILABLE, db_retrying
from artwatch.images import ImageStore
from artwatch.queue import (
    MATCH_IMAGES,
    MATCHER_QUEUE,
    RETROHUNT,
    SEND_URGENT,
    SWEEP_MATCHER,
    app,
)
from artwatch.settings import get_settings
from matcher.batches import REQUEUE, MatcherBatches
from matcher.catalogue_index import NotIndexed
from matcher.recognise import ORIGINS, MatchPolicy, NoActiveBundle, Recogniser, active_bundle_row

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1  # PostgreSQL bigint
ARGUMENTS = ("image_ids", "listing_id", "origin")
CATALOGUE_CHECK_S = 10.0  # how often a worker looks for a new bundle or catalogue photos

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


def load_recogniser(conn: Any, settings: Any) -> Recogniser:
    """The active bundle's recogniser under these settings (see `Recogniser.load`)."""
    return Recogniser.load(
        conn, ImageStore.from_settings(settings), policy_from(settings),
        device=settings.matcher_device, cache_dir=settings.local_features_dir,
        decode_threads=settings.matcher_decode_threads,
        model_batch=settings.matcher_batch_size,
        retrieval_chunk=settings.matcher_retrieval_chunk,
        catalogue_dtype=settings.matcher_catalogue_dtype,
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
    """The worker's recogniser, reloaded when the active bundle or catalogue changed.

    The check counts the catalogue's embeddings, which costs a scan of a large catalogue:
    it runs at most every `CATALOGUE_CHECK_S`, not for every batch.
    """
    now = time.monotonic()
    if _state["recogniser"] is not None and now - _state.get("checked", 0.0) < CATALOGUE_CHECK_S:
        return _state["recogniser"]
    key = _catalogue_version(conn)
    _state["checked"] = now
    if _state["key"] != key or _state["recogniser"] is None:
        if _state["recogniser"] is not None:
            _state["recogniser"].predictor.close()
        _state["recogniser"] = load_recogniser(conn, get_settings())
        _state["key"] = key
    return _state["recogniser"]


def _is_id(value: Any) -> bool:
    """A JSON integer that fits a bigint id (bool is an int in Python, but not an id)."""
    return type(value) is int and 1 <= value <= MAX_ID


def parse_arguments(args: Any, kwargs: Any) -> tuple[list[int], int | None, str]:
    """(image ids, listing id, origin) of one message, or ValueError saying what is wrong.

    Strict on purpose: `int("123")`, `int(True)` and `int(1.9)` all "work" and would write
    predictions for other photos; `int(float("inf"))` raised mid-batch and lost the batch.
    """
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise ValueError("arguments are not a list and an object")
    unknown = sorted(set(kwargs) - set(ARGUMENTS))
    if unknown or len(args) > 3:
        raise ValueError(f"unexpected arguments: {unknown or list(args[3:])}")
    given = dict(zip(ARGUMENTS, args, strict=False))
    if set(given) & set(kwargs):
        raise ValueError(f"{sorted(set(given) & set(kwargs))} given twice")
    given.update(kwargs)
    if "image_ids" not in given:
        raise ValueError("image_ids missing")
    ids, listing = given["image_ids"], given.get("listing_id")
    if not isinstance(ids, list) or not all(_is_id(i) for i in ids):
        raise ValueError("image_ids must be a list of integer ids")
    if listing is not None and not _is_id(listing):
        raise ValueError("listing_id must be an integer id or null")
    origin = given.get("origin", "live")
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}")
    return list(ids), listing, origin


Parsed = tuple[list[int], int | None, str]


def _valid(requests: list[SimpleRequest]) -> list[tuple[SimpleRequest, Parsed]]:
    """Requests with sound arguments; the others are moved to the dead letters."""
    good = []
    for request in requests:
        try:
            parsed = parse_arguments(request.args, request.kwargs)
        except ValueError as exc:
            deadletters.record("invalid_arguments", MATCHER_QUEUE,
                               {"id": request.id, "task": MATCH_IMAGES, "args": request.args,
                                "kwargs": request.kwargs}, str(exc))
            continue
        good.append((request, parsed))
    return good


def _handle(parsed: list[Parsed]) -> dict[str, Any] | None:
    """One attempt at the batch; None when no bundle is active (or it has no index)."""
    with get_pool().connection() as conn:
        conn.autocommit = True
        try:
            recogniser = recogniser_for(conn)
        except (NoActiveBundle, NotIndexed) as exc:
            # Nothing is lost: once a bundle can serve, the sweeper re-queues these photos.
            log.error("%s; %d photo(s) left for the sweeper", exc,
                      sum(len(p[0]) for p in parsed))
            return None
        return recogniser.handle(conn, parsed)


@app.task(name=MATCH_IMAGES, base=MatcherBatches, acks_late=True)
def match_images(requests: list[SimpleRequest]) -> dict[str, Any]:
    """Recognise the photos of a batch of messages and score their listings."""
    good = _valid(requests)
    summary: dict[str, Any] = {"messages": len(requests), "invalid": len(requests) - len(good),
                               "photos": 0, "listings": 0, "matches": 0}
    if not good:
        return summary
    parsed = [p for _, p in good]
    budget = get_settings().db_retry_s
    started = time.monotonic()
    try:
        outcome = db_retrying(budget, "matcher batch")(_handle, parsed)
    except DB_UNAVAILABLE as exc:
        log.error("database unavailable for %.0fs (%s); %d message(s) go back to the queue",
                  budget, exc, len(good))
        return {**summary, REQUEUE: [request.id for request, _ in good]}
    if outcome is None:
        return summary
    if outcome["match_ids"]:  # the alerts stage decides which are urgent enough to send now
        try:
            app.send_task(SEND_URGENT, args=[outcome["match_ids"]])
        except Exception as exc:  # the matches are written; the digest still reports them
            log.error("could not queue urgent alerts for matches %s: %s",
                      outcome["match_ids"], exc)
    summary.update(photos=outcome["photos"], listings=outcome["listings"],
                   matches=len(outcome["match_ids"]),
                   seconds=round(time.monotonic() - started, 3),
                   **({"stages": outcome["timings"]} if "timings" in outcome else {}))
    log.info("matched batch of %d message(s): %s", len(requests), summary)
    return summary


@app.task(name=SWEEP_MATCHER, ignore_result=True)
def sweep_matcher() -> dict[str, Any]:
    """Re-queue listing photos and listings that interrupted work left undone."""
    from dataclasses import asdict

    from artwatch.db import connect
    from matcher.sweeper import sweep

    settings = get_settings()
    with connect(autocommit=True) as conn:
        result = sweep(conn, app, task=MATCH_IMAGES, queue=MATCHER_QUEUE,
                       after_s=settings.matcher_recover_after_s,
                       max_attempts=settings.matcher_max_attempts,
                       limit=settings.matcher_sweep_limit)
    return asdict(result)


def _schedule_sweeps(sender: Any = None, **_: Any) -> None:
    interval = get_settings().matcher_sweep_interval_s
    # A sweep nobody took in time is dropped: the next one does the same work.
    app.add_periodic_task(interval, sweep_matcher.s().set(expires=interval),
                          name=SWEEP_MATCHER)


_schedule_sweeps()


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
