"""Waiting for the worker: its answers to rec-requests, and its progress through the event topics.

.. code-block:: python

    with RequestAnswers(settings) as answers, EventProducer(settings) as producer:
        ids = [producer.request_recommendations(user, 10) for user in users]
        producer.flush()
        lists = answers.wait(ids, timeout=30.0)   # request_id -> list message; late ones absent
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

from consumers.sdk import TopicReader, watermarks
from stream.config import Settings, get_settings
from stream.contract import INTERACTION_TOPICS

__all__ = ["RequestAnswers", "worker_lag", "EVENT_TOPICS"]

#: The topics a worker's ingest reads (logical names): every interaction event's.
EVENT_TOPICS = INTERACTION_TOPICS


class RequestAnswers:
    """The worker's answers to rec-requests, read from the recommendations topic from the moment
    this object is made (each partition's end then): lists sent earlier are never read.

    Make it before sending the requests, then :meth:`wait` for their ids; close it (or use
    ``with``) when done.

    Attributes
    ----------
    late
        Answers that came after :meth:`wait` gave up on them.
    other
        Lists that answer none of the requests waited for here: pushes (``trigger: "event"``),
        other clients' answers, messages that are not JSON objects.
    """

    def __init__(self, settings: Settings | None = None, *, timeout: float = 10.0):
        self._reader = TopicReader("recommendations", settings)
        self.topic = self._reader.topic
        self._consumer = self._reader.tail(timeout)
        self._given_up: set[str] = set()
        self.late = 0
        self.other = 0

    def wait(self, request_ids: Iterable[str], timeout: float) -> dict[str, dict[str, Any]]:
        """The answers (request id -> list message) to ``request_ids`` that arrive within
        ``timeout`` seconds; a request not answered by then is left out (and its answer, if it
        comes later, counted in :attr:`late`)."""
        from confluent_kafka import KafkaError

        wanted = set(request_ids)
        got: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(wanted):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch = self._consumer.consume(num_messages=1000, timeout=min(remaining, 0.2))
            if not batch:
                self._reader.errors.check()  # a refused login ends the wait at once
            for msg in batch:
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"reading {self.topic}: {msg.error()}")
                body = _json_object(msg.value())
                request_id = body.get("request_id") if body is not None else None
                if request_id in wanted:
                    got[request_id] = body
                elif request_id in self._given_up:
                    self._given_up.discard(request_id)
                    self.late += 1
                else:
                    self.other += 1
        self._given_up |= wanted - got.keys()
        return got

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> "RequestAnswers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _json_object(value: bytes | None) -> dict[str, Any] | None:
    try:
        body = json.loads(value) if value is not None else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def worker_lag(settings: Settings | None = None, topics: Iterable[str] = EVENT_TOPICS, *,
               timeout: float = 10.0) -> int:
    """Messages on ``topics`` (logical names) that the workers' group (STREAMREC_APP_ID) has not
    committed yet: 0 once they have applied everything published so far (Faust commits what was
    applied every few seconds). It reads the group's offsets and never joins the group."""
    from confluent_kafka import Consumer, TopicPartition

    s = settings or get_settings()
    probe = Consumer({**s.kafka_client_config(), "group.id": s.app_id, "enable.auto.commit": False})
    try:
        parts = []
        for logical in topics:
            name = s.topic(logical)
            meta = probe.list_topics(name, timeout=timeout).topics.get(name)
            if meta is not None and meta.error is None:
                parts += [TopicPartition(name, p) for p in sorted(meta.partitions)]
        committed = probe.committed(parts, timeout=timeout) if parts else []
        marks = watermarks(probe, committed, timeout=timeout)
        # a partition never committed has an offset < 0: all of it is still to apply
        return sum(high - max(tp.offset, low) for tp, (low, high) in zip(committed, marks))
    finally:
        probe.close()
