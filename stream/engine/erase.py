"""Erasing users in the worker, free of Faust: the requests of the user-erasures topic.

user-erasures is co-partitioned with the event topics (key = user id), so the worker that owns a
user's events applies their erasure::

    records -> validate: bad ones to the dead-letter topic (original bytes + reason)
            -> per request: wait for this worker's batch in flight (Ingest.lock) and push (Pusher)
               -> StateStore.erase: every key named by the user deleted and an erasure marker set
                  (keyed by a keyed hash of the user id), one atomic call
               -> the pusher forgets the user (pending, last push, last list)
            -> a tombstone for the user on the compacted users topic; a reply on
               user-erasures.done (the request id, no user id) -> wait until Kafka has them

The ordering rules live in the state and the engine: while the marker lives, the user's events
at or before the erasure's ts are dropped whenever they arrive (redelivered, late, on another
topic), a batch loaded before the erasure and committed after it is refused and computed again,
and a profile at or before it is not stored. A repeated request (the marker at or after its ts)
deletes nothing: what the user has then came after the erasure. Logs name the request id,
never the user.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from stream.contract import InvalidEvent
from stream.engine.ingest import Ingest
from stream.engine.validate import Record
from stream.erasure import ErasureRequest, done_message, validate_erasure_request

__all__ = ["Eraser", "ErasureOutcome", "validate_erasure_records"]

log = logging.getLogger(__name__)


@dataclass
class ErasureOutcome:
    erased: int = 0
    already_erased: int = 0
    invalid: int = 0


def validate_erasure_records(records: list[Record]) -> tuple[list[ErasureRequest], list[tuple[Record, str, str]]]:
    """(valid requests in order, rejected (record, reason, detail)). A request's key must be its
    user_id: that is what puts it in the partition of the user's events. Details name no user.

    >>> ok = Record("user-erasures", 0, 1, b"u1", b'{"schema": "v1", "request_id": "r", "user_id": "u1", "ts": 5}')
    >>> moved = Record("user-erasures", 0, 2, b"u2", ok.value)
    >>> valid, rejected = validate_erasure_records([ok, moved, Record("user-erasures", 0, 3, b"u1", None)])
    >>> [r.request_id for r in valid], [(rec.offset, reason) for rec, reason, _ in rejected]
    (['r'], [(2, 'key_mismatch'), (3, 'not_json')])
    """
    valid, rejected = [], []
    for rec in records:
        try:
            if rec.value is None:
                raise InvalidEvent("not_json", "message has no value (a tombstone): a request must be a JSON object")
            req = validate_erasure_request(rec.value)
            if rec.key is None or rec.key.decode("utf-8", errors="replace") != req.user_id:
                raise InvalidEvent("key_mismatch", "message key differs from user_id: the key must be the user_id "
                                   "(it puts the request in the partition of the user's events)", "user_id")
        except InvalidEvent as exc:
            rejected.append((rec, exc.reason, str(exc)))
            continue
        valid.append(req)
    return valid, rejected


class Eraser:
    """Applies erasure requests (see the module docstring).

    Parameters
    ----------
    ingest
        The worker's batch handler: its state, lock, pusher, metrics, and its sink, which also
        takes ``user_tombstone(user_id)`` and ``erasure_done(request_id, payload)``
        (:class:`stream.engine.publisher.KafkaPublisher`); dead letters go through its ``reject``.
    clock
        Wall-clock seconds (the reply's ``done_at``).
    """

    def __init__(self, ingest: Ingest, *, clock: Callable[[], float] = time.time) -> None:
        self.ingest = ingest
        self.state = ingest.engine.state
        self.pusher = ingest.pusher
        self.sink = ingest.sink
        self.metrics = ingest.metrics
        self.clock = clock

    async def handle(self, records: list[Record]) -> ErasureOutcome:
        """Apply a batch of requests; every one is answered, or dead-lettered. Safe to repeat
        (a repeat of a request is answered ``already_erased``)."""
        out = ErasureOutcome()
        valid, rejected = validate_erasure_records(records)
        for rec, reason, detail in rejected:
            out.invalid += 1
            await self.ingest.reject(rec, reason, detail)
        for req in valid:
            async with self.ingest.lock:  # no batch of this worker between its load and its push
                done = await self.pusher.forgetting(
                    [req.user_id], lambda r=req: self.state.erase(r.user_id, r.ts))
                if self.ingest.engine.experiments is not None:
                    await self.ingest.engine.experiments.forget(req.user_id)
            await self.sink.user_tombstone(req.user_id)
            await self.sink.erasure_done(req.request_id, done_message(req.request_id, done.status, done.found,
                                                                      done.erased_at, self.clock()))
            self.metrics.erasures_total.labels(done.status).inc()
            setattr(out, done.status, getattr(out, done.status) + 1)
            log.info("erasure request %s: %s", req.request_id, done.status)
        await self.sink.flush()
        return out
