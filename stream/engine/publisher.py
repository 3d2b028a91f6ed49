"""What the worker sends to Kafka, through one confluent-kafka (librdkafka) producer.

Recommendation lists, dead letters, drift alerts, item updates and item rows (and, for an
erasure, a tombstone on the users topic and a reply on user-erasures.done): a worker
sends about one message for each event it reads. Through Faust's own producer (aiokafka,
pure Python) each send cost about 50 µs of the worker's one core; ``produce`` hands the
message to librdkafka, whose threads batch, compress and send it outside the GIL
(docs/PERFORMANCE.md). Faust still consumes, commits and rebalances.

:meth:`KafkaPublisher.flush` waits for the messages *the calling task* sent since its last
flush, and raises :class:`DeliveryError` if any of them failed: each agent flushes before its
batch is acknowledged, so a failure makes that agent retry the batch (sending again: at least
once) and one agent never waits for, or takes the blame for, another's messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from stream.engine.validate import Record, dlq_headers
from stream.config import Settings

__all__ = ["KafkaPublisher", "DeliveryError"]

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """Kafka did not take some messages (the sender retries its batch)."""


class _Sent:
    """The messages one task sent since its last flush, and what became of them."""

    __slots__ = ("sent", "done", "errors")

    def __init__(self) -> None:
        self.sent = 0
        self.done = 0
        self.errors: list[str] = []

    def delivered(self, err, msg) -> None:
        # librdkafka calls this from poll(), which only this event loop's thread calls
        self.done += 1
        if err is not None:
            self.errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")


class KafkaPublisher:
    """Everything the worker sends to Kafka.

    Parameters
    ----------
    settings
        Bootstrap servers, security (SASL/TLS) and the topic prefix.
    producer
        A ready ``confluent_kafka.Producer`` (tests); default one made from ``settings``.
    flush_timeout_seconds
        How long :meth:`flush` waits for delivery before it raises.
    """

    def __init__(self, settings: Settings, *, producer: Any = None, flush_timeout_seconds: float = 60.0) -> None:
        self.flush_timeout_seconds = flush_timeout_seconds
        self._topics = {name: settings.topic(name) for name in
                        ("recommendations", "events.dlq", "alerts.drift", "item-updates", "item-factors", "users",
                         "user-erasures.done")}
        if producer is None:
            from confluent_kafka import Producer

            producer = Producer({
                **settings.kafka_client_config(),
                "client.id": f"{settings.worker_id or settings.app_id}-publisher",
                "enable.idempotence": True,
                "acks": "all",
                # keyed messages land where Kafka's default (murmur2) partitioner puts them, as
                # they did through Faust: consumers.sdk finds a user's lists by it, and an item's
                # rows stay in one partition of the compacted item-factors topic
                "partitioner": "murmur2_random",
                "linger.ms": 2,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
            })
        self._producer = producer
        self._sent: dict[asyncio.Task | None, _Sent] = {}

    async def _send(self, name: str, value: bytes | None, *, key: bytes | None = None,
                    partition: int | None = None, headers: list[tuple[str, bytes]] | None = None) -> None:
        sent = self._sent.setdefault(asyncio.current_task(), _Sent())
        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if headers:
            extra["headers"] = headers
        while True:
            try:
                self._producer.produce(self._topics[name], value=value, key=key, on_delivery=sent.delivered, **extra)
                break
            except BufferError:
                # librdkafka's queue is full (the broker is slow or away): serve delivery
                # reports, which frees room, and let the other tasks run meanwhile
                self._producer.poll(0)
                await asyncio.sleep(0.01)
        sent.sent += 1
        self._producer.poll(0)

    async def dead_letter(self, record: Record, reason: str, detail: str) -> None:
        await self._send("events.dlq", record.value, key=record.key, headers=dlq_headers(record, reason, detail))

    async def recommendations(self, user_id: str, payload: bytes) -> None:
        await self._send("recommendations", payload, key=user_id.encode())

    async def drift_alert(self, segment: str, payload: bytes) -> None:
        await self._send("alerts.drift", payload, key=segment.encode())

    async def item_update(self, partition: int, payload: bytes) -> None:
        await self._send("item-updates", payload, partition=partition)

    async def item_row(self, item_id: str, payload: bytes) -> None:
        await self._send("item-factors", payload, key=item_id.encode())

    async def user_tombstone(self, user_id: str) -> None:
        """Delete the user's profile on the compacted users topic (murmur2 of the key: the partition
        their profiles are in)."""
        await self._send("users", None, key=user_id.encode())

    async def erasure_done(self, request_id: str, payload: bytes) -> None:
        await self._send("user-erasures.done", payload, key=request_id.encode())

    async def flush(self) -> None:
        """Wait until the calling task's messages are delivered; :class:`DeliveryError` if one
        failed or the wait ran past ``flush_timeout_seconds``."""
        sent = self._sent.pop(asyncio.current_task(), None)
        if sent is None:
            return
        deadline = time.monotonic() + self.flush_timeout_seconds
        self._producer.poll(0)
        while sent.done < sent.sent:
            if time.monotonic() > deadline:
                raise DeliveryError(f"{sent.sent - sent.done} of {sent.sent} messages not delivered within "
                                    f"{self.flush_timeout_seconds:.0f} s")
            await asyncio.sleep(0.001)
            self._producer.poll(0)
        if sent.errors:
            raise DeliveryError(f"{len(sent.errors)} of {sent.sent} messages failed, first: {sent.errors[0]}")

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is queued (at shutdown); returns how many messages were left undelivered."""
        left = self._producer.flush(timeout)
        if left:
            log.warning("%d messages were not delivered before shutdown (their batches were not acknowledged "
                        "and will be read again)", left)
        return left
