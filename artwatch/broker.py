"""The Redis broker transport, made to survive poison entries on its queues.

kombu's Redis transport pops an entry (BRPOP) and then parses it; an entry that is not JSON,
or JSON that is not a kombu message (`{"hello": 1}`), raises inside the worker's event loop,
which ends the worker, and every new worker dies the same way. This transport moves such an
entry aside instead (`artwatch.deadletters`: logged, counted, kept with its reason) and goes
on with the next one. Everything else is kombu's own code (`kombu.transport.redis`).

`_brpop_read` below is kombu 5.7's with the parse guarded (kombu is pinned in pyproject.toml;
`tests/matcher/test_poison_messages.py` fails if an upgrade changes the path).
"""

from __future__ import annotations

import binascii
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from artwatch import deadletters


class PoisonEntry(Exception):
    """A queue entry that is not a message this broker can deliver."""


def _parse(item: bytes | str) -> dict[str, Any]:
    """A queue entry as the payload dict kombu expects, or PoisonEntry."""
    try:
        payload = loads(bytes_to_str(item))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise PoisonEntry(f"not_json: {exc}") from None
    if not isinstance(payload, dict):
        raise PoisonEntry("not_a_message: not a JSON object")
    properties = payload.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        raise PoisonEntry("not_a_message: no properties.delivery_tag")
    if not isinstance(payload.get("headers", {}), dict):
        raise PoisonEntry("not_a_message: headers is not an object")
    return payload


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; poison entries go to the dead letters instead of raising."""

    def _dead_letter(self, exc: PoisonEntry, queue: str, item: Any) -> None:
        reason, _, detail = str(exc).partition(": ")
        try:
            with self.conn_or_acquire() as client:
                deadletters.record(reason, queue, item, detail, client=client)
        except Exception:  # no client at all: record() logs on its own connection
            deadletters.record(reason, queue, item, detail)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP",
                                                        **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if dest__item:
                dest, item = dest__item
                dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
                self._queue_cycle.rotate(dest)
                try:
                    payload = self._checked(item)
                except PoisonEntry as exc:
                    self._dead_letter(exc, dest, item)
                    return True
                self.connection._deliver(payload, dest)
                return True
            raise kombu_redis.Empty()
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _get(self, queue: str) -> dict[str, Any]:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))
                if item:
                    self._maybe_update_queues_expire(client, queue)
                    try:
                        return self._checked(item)
                    except PoisonEntry as exc:
                        self._dead_letter(exc, queue, item)
                        continue
            self._maybe_update_queues_expire(client, queue)
            raise kombu_redis.Empty()

    def _checked(self, item: Any) -> dict[str, Any]:
        """Parse an entry and check its body decodes, as kombu's Message will."""
        payload = _parse(item)
        body = payload.get("body")
        if body:
            try:
                self.decode_body(body, payload["properties"].get("body_encoding"))
            except (ValueError, TypeError, binascii.Error) as exc:
                raise PoisonEntry(f"bad_body: {exc}") from None
        return payload


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with the poison-tolerant channel."""

    Channel = Channel


def _raw(message: Any) -> Any:
    """What a message carried, for the dead letters (its raw payload when there is one)."""
    return getattr(message, "_raw", None) or {"headers": getattr(message, "headers", None),
                                               "body": getattr(message, "body", None)}


def _queue(message: Any) -> str | None:
    info = getattr(message, "delivery_info", None) or {}
    return info.get("routing_key") or info.get("exchange")


class Consumer(CeleryConsumer):
    """Celery's consumer; messages it cannot run are also kept in the dead letters.

    Celery already logs such a message and acknowledges or rejects it without requeueing
    (no loop); this keeps a copy with the reason as well.
    """

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        deadletters.record("undecodable_body", _queue(message), _raw(message), str(exc))
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        deadletters.record("unknown_message_format", _queue(message), _raw(message))
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        deadletters.record("unknown_task", _queue(message), _raw(message), str(exc))
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        deadletters.record("invalid_task", _queue(message), _raw(message), str(exc))
        super().on_invalid_task(body, message, exc)
