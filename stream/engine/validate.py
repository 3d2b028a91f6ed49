"""From Kafka records to valid events: every rejected record gets a machine-readable reason.

A record is rejected when its topic carries no event type, it has no value (a tombstone), its
value breaks the contract (:func:`stream.contract.validate_event`), or its key is not the event's
``user_id`` (which would break co-partitioning). The worker dead-letters rejected records with
their original bytes and :func:`dlq_headers`.

Most valid interaction events are decoded and checked in C (:mod:`stream.engine.decode`), the
rest one by one by :func:`~stream.contract.validate_event`, which names a rejection's reason:
the events and the reasons are the same either way.

Examples
--------
>>> rec = Record("clicks", 0, 7, b"u1", b'{"event_id": "e", "user_id": "u1", "item_id": "i", "ts": 1, "schema": "v1"}')
>>> valid, rejected = validate_records([rec, Record("clicks", 0, 8, b"u1", b"{")], {"clicks": "click"})
>>> [ev.event_id for _, ev in valid], [(r.offset, reason) for r, reason, _ in rejected]
(['e'], [(8, 'not_json')])
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from stream.contract import Event, InvalidEvent, validate_event
from stream.engine.decode import decode_event

__all__ = ["Record", "validate_records", "dlq_headers"]


@dataclass(frozen=True)
class Record:
    """One Kafka message as the engine sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # producer create time, epoch seconds


def validate_records(records: list[Record], topic_types: dict[str, str], *, fast: bool = True
                     ) -> tuple[list[tuple[Record, Event]], list[tuple[Record, str, str]]]:
    """(valid (record, event) in order, rejected (record, reason, detail)).

    Parameters
    ----------
    records
        The batch, in order.
    topic_types
        The event type each topic carries.
    fast
        Decode the interaction events the C fast path accepts with it
        (:func:`stream.engine.decode.decode_event`); the rest, and all of them when False, go
        through :func:`stream.contract.validate_event` one by one. Both give the same result.
    """
    valid, rejected = [], []
    for rec in records:
        event_type = topic_types.get(rec.topic)
        event = decode_event(event_type, rec.value) if fast else None
        try:
            if event is None:
                event = _validate_one(rec, event_type)
            if rec.key is not None and rec.key.decode("utf-8", errors="replace") != event.user_id:
                raise InvalidEvent(
                    "key_mismatch",
                    f"message key {rec.key[:64]!r} differs from user_id {event.user_id!r}: key must be the user_id",
                    "user_id",
                )
        except InvalidEvent as exc:
            rejected.append((rec, exc.reason, str(exc)))
            continue
        valid.append((rec, event))
    return valid, rejected


def _validate_one(rec: Record, event_type: str | None) -> Event:
    if event_type is None:
        raise InvalidEvent("unknown_topic", f"topic {rec.topic!r} carries no known event type")
    if rec.value is None:
        raise InvalidEvent("not_json", "message has no value (a tombstone): events must be JSON objects")
    return validate_event(event_type, rec.value)


def dlq_headers(record: Record, reason: str, detail: str) -> list[tuple[str, bytes]]:
    """Dead-letter headers: the machine-readable reason and where the message came from."""
    return [
        ("streamrec.reason", reason.encode()),
        ("streamrec.detail", detail.encode("utf-8", errors="replace")[:1024]),
        ("streamrec.source.topic", record.topic.encode()),
        ("streamrec.source.partition", str(record.partition).encode()),
        ("streamrec.source.offset", str(record.offset).encode()),
        ("streamrec.rejected_at", repr(time.time()).encode()),
    ]
