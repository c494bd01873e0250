"""celery-batches' `Batches`, with what a matcher worker needs to keep going and lose nothing.

On top of celery-batches (buffer messages, run them as one task call, acknowledge after):

* the batch size and flush interval come from settings (`ARTWATCH_MATCHER_BATCH_SIZE`,
  `ARTWATCH_MATCHER_FLUSH_INTERVAL_S`), read when the worker starts;
* after a broker reconnect the flush timer runs again: Celery empties the event loop's timers
  when the connection drops, and celery-batches, which only starts its timer for the first
  message it buffers, kept a dead reference, so later messages waited until a batch filled;
* the task decides per message: acknowledged, or handed back to the queue (`requeue`: the
  database stayed down longer than the batch may wait);
* a pool process killed while it runs a batch (the OOM killer) no longer holds the batch's
  prefetch slots for ever: its messages go back to the queue once; messages whose batch
  killed a process twice are moved to the dead letters (and their photos are re-queued by
  the sweeper up to `ARTWATCH_MATCHER_MAX_ATTEMPTS` times).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from artwatch import deadletters

log = logging.getLogger(__name__)

REQUEUE = "requeue"  # key of a batch result: ids of the messages to hand back to the queue
LOST_LIMIT = 2  # a message whose batch lost its process this often is moved aside


class MatcherBatches(Batches):
    """Batches sized by settings, robust to reconnects and to a killed pool process."""

    abstract = True

    def __init__(self) -> None:
        super().__init__()
        self._lost: dict[str, int] = {}

    @property
    def flush_every(self) -> int:  # type: ignore[override]
        from artwatch.settings import get_settings

        return get_settings().matcher_batch_size

    @property
    def flush_interval(self) -> float:  # type: ignore[override]
        from artwatch.settings import get_settings

        return get_settings().matcher_flush_interval_s

    def Strategy(self, task: Batches, app: Any, consumer: Any) -> Callable:  # noqa: N802
        # Called again on every (re)connect: the old timer entry may be gone with the old
        # loop's timers (Celery clears them after a connection error); start afresh.
        if self._tref is not None:
            self._tref.cancel()
        self._tref = None
        handler = super().Strategy(task, app, consumer)
        if not self._buffer.empty() or not self._pending.empty():
            # Messages buffered before the connection dropped: flush them on the new timer.
            self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)
        return handler

    def flush(self, requests: Collection[Any]) -> Any:
        requests = list(requests)
        serializable = ([SimpleRequest.from_request(r) for r in requests],)

        def on_accepted(pid: int, time_accepted: float) -> None:
            for req in requests:
                if not req.task.acks_late:
                    req.acknowledge()

        def on_return(result: Any) -> None:
            requeue = set(result.get(REQUEUE, ())) if isinstance(result, dict) else set()
            for req in requests:
                self._lost.pop(req.id, None)
                if req.id in requeue:
                    req.reject(requeue=True)
                else:
                    req.acknowledge()

        def on_error(failure: Any) -> None:
            # The pool process died with the batch (WorkerLostError) or the pool failed it.
            exc = getattr(failure, "exception", failure)
            log.error("batch of %d message(s) lost its pool process: %r", len(requests), exc)
            for req in requests:
                lost = self._lost[req.id] = self._lost.get(req.id, 0) + 1
                if lost >= LOST_LIMIT:
                    self._lost.pop(req.id, None)
                    deadletters.record("worker_lost", "matcher",
                                       {"id": req.id, "args": req.args, "kwargs": req.kwargs},
                                       f"its batch lost the pool process {lost} times")
                    req.acknowledge()
                else:
                    req.reject(requeue=True)

        return self._pool.apply_async(
            apply_batches_task,
            (self, serializable, 0, None),
            accept_callback=on_accepted,
            callback=on_return,
            error_callback=on_error,
        )
