"""Waiting out a PostgreSQL outage: which errors mean "try again", and the back-off.

A restart, a failover or a network blip shows up as `psycopg.OperationalError` (the server
went away, refused, or rolled a transaction back for a deadlock / serialisation conflict),
`psycopg.InterfaceError` (a connection already closed) or a pool that cannot hand out a
connection in time. Work that hits one of those waits with exponential back-off and jitter
(tenacity) and runs again; every other error is a bug or bad data and is raised at once.
Callers give a time budget: past it the last error is raised, and they decide what then
(hand a message back to the queue, mark a crawl failed).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import tenacity
from psycopg_pool import PoolTimeout

log = logging.getLogger(__name__)

DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout,
)
FIRST_WAIT_S = 0.5
MAX_WAIT_S = 15.0


def _log_wait(what: str) -> Any:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: database unavailable (%s: %s); attempt %d, retrying in %.1fs",
                    what, type(exc).__name__, str(exc).strip()[:200], state.attempt_number,
                    wait)
    return before_sleep


def _options(budget_s: float, what: str) -> dict[str, Any]:
    return {
        "retry": tenacity.retry_if_exception_type(DB_UNAVAILABLE),
        "wait": tenacity.wait_exponential_jitter(initial=FIRST_WAIT_S, max=MAX_WAIT_S),
        "stop": tenacity.stop_after_delay(budget_s),
        "before_sleep": _log_wait(what),
        "reraise": True,
    }


def db_retrying(budget_s: float, what: str) -> tenacity.Retrying:
    """`for attempt in db_retrying(...): with attempt: ...` or `db_retrying(...)(fn, *args)`."""
    return tenacity.Retrying(**_options(budget_s, what))


def async_db_retrying(budget_s: float, what: str) -> tenacity.AsyncRetrying:
    """The same for coroutines (`await async_db_retrying(...)(coro_fn, *args)`)."""
    return tenacity.AsyncRetrying(**_options(budget_s, what))
