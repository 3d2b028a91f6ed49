"""Erasure requests and their replies: the wire contract of the user-erasures topics.

Standard library only, like :mod:`stream.contract` (producers and consumers import it cheaply).

A request goes to ``user-erasures`` (key = the user id, so it lands in the partition whose owner
holds the user's state; co-partitioned with the event topics)::

    {"schema": "v1", "request_id": str, "user_id": str, "ts": float}

``ts`` is the erasure's event time (epoch seconds): the user's events with a ts at or before it
never count again; a later event starts a new user. With STREAMREC_ID_KEY set, ``user_id`` is
the pseudonym (:meth:`producers.sdk.EventProducer.erase` hashes it).

The worker that applied it answers on ``user-erasures.done`` (key = the request id; no user id)::

    {"schema": "v1", "request_id": str, "status": "erased" | "already_erased", "found": bool,
     "erased_at": float, "done_at": float}

``status``: ``erased``, or ``already_erased`` for a repeat (an erasure at or after this ts was
applied before: a redelivered request); ``found``: the user had state that was deleted;
``erased_at``: the ts of the erasure in effect; ``done_at``: when it was applied (wall clock).

Examples
--------
>>> validate_erasure_request(b'{"schema": "v1", "request_id": "r1", "user_id": "u1", "ts": 10}')
ErasureRequest(request_id='r1', user_id='u1', ts=10.0)
>>> try:
...     validate_erasure_request(b'{"schema": "v1", "request_id": "r1", "ts": 10}')
... except InvalidEvent as exc:
...     print(exc.reason, "|", exc)
missing_field | field 'user_id' is missing: it is required
"""

from __future__ import annotations


from stream.contract import SCHEMA_VERSION, ErasureRequest, encode, validate_erasure_request
from stream.contract import InvalidEvent  # noqa: F401  (the examples above use it)

__all__ = ["ErasureRequest", "validate_erasure_request", "request_message", "done_message", "STATUSES"]

#: The statuses of a reply.
STATUSES = ("erased", "already_erased")


def request_message(request_id: str, user_id: str, ts: float) -> bytes:
    """A request's bytes (compact JSON), validated first."""
    body = {"schema": SCHEMA_VERSION, "request_id": request_id, "user_id": user_id, "ts": float(ts)}
    validate_erasure_request(body)
    return encode(body)


def done_message(request_id: str, status: str, found: bool, erased_at: float, done_at: float) -> bytes:
    """A reply's bytes (compact JSON).

    >>> done_message("r1", "erased", True, 10.0, 12.5)
    b'{"schema":"v1","request_id":"r1","status":"erased","found":true,"erased_at":10.0,"done_at":12.5}'
    """
    if status not in STATUSES:
        raise ValueError(f"erasure status {status!r}: must be one of {', '.join(STATUSES)}")
    body = {"schema": SCHEMA_VERSION, "request_id": request_id, "status": status, "found": bool(found),
            "erased_at": float(erased_at), "done_at": float(done_at)}
    return encode(body)
