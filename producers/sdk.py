"""The producer SDK: publish contract-v1 events to streamrec's topics with confluent-kafka.

* idempotent producer (``enable.idempotence``, ``acks=all``): retries never duplicate;
* key = user_id (item_id for the items topic), partitioned with murmur2 like the
  Java client and the worker, so a user's events all land in one partition;
* batching (``linger.ms``), delivery reports counted and surfaced (``on_delivery``,
  :attr:`EventProducer.failed`), and a flush on ``close()`` / leaving the ``with`` block;
* with STREAMREC_ID_KEY set, pseudonymous ids: every ``user_id`` and ``event_id`` is replaced
  by its keyed hash (stream/pseudonyms.py) before validation, so raw ids never leave the app;
* a refused login or a failed TLS handshake ends ``flush()`` at once with one clear line
  (:class:`DeliveryError`) instead of waiting out its timeout.

Examples
--------
.. code-block:: python

    with EventProducer() as producer:
        producer.send("click", make_event("click", event_id="e1", user_id="u1", item_id="i9", ts=time.time()))
        producer.purchase("u1", "i9", value=12.5, currency="EUR", context={"rec_id": rec_id, "position": 0})
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from stream.config import Settings, get_settings
from stream.contract import TOPIC_OF, encode, make_event, validate_event
from stream.preflight import KafkaErrorWatch
from stream.pseudonyms import Pseudonyms

__all__ = ["EventProducer", "DeliveryError", "TOPIC_OF", "DeliveryStats"]

log = logging.getLogger(__name__)



class DeliveryError(RuntimeError):
    """Some messages were not delivered; ``errors`` holds (topic, key, error text) samples."""

    def __init__(self, message: str, errors: list[tuple[str, str, str]]):
        super().__init__(message)
        self.errors = errors


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # first 100 failures


class EventProducer:
    """Publishes events; validates each against the contract before it leaves the process.

    Parameters
    ----------
    settings
        Bootstrap servers, security and topic prefix. Default: from STREAMREC_* variables.
    linger_ms
        How long librdkafka waits to fill a batch.
    on_delivery
        Called as ``on_delivery(error_or_None, message)`` for each delivery report.
    validate
        Set False only to send deliberately broken events (tests of the dead-letter path).
    extra_config
        More librdkafka settings, applied last.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        linger_ms: int = 5,
        on_delivery: Callable[[Any, Any], None] | None = None,
        validate: bool = True,
        extra_config: dict[str, Any] | None = None,
    ):
        from confluent_kafka import Producer

        self.settings = settings or get_settings()
        self.on_delivery = on_delivery
        self.validate = validate
        self.stats = DeliveryStats()
        self.ids = Pseudonyms.from_settings(self.settings)
        self.errors = KafkaErrorWatch(self.settings)
        conf = {
            **self.settings.kafka_client_config(),
            "error_cb": self.errors,
            "enable.idempotence": True,
            "acks": "all",
            # murmur2 matches the Java client and aiokafka (the worker): co-partitioning by user_id holds.
            "partitioner": "murmur2_random",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 200_000,
        }
        conf.update(extra_config or {})
        self._producer = Producer(conf)
        self._closed = False
        # A producer app that forgets close() still delivers what it queued when it exits.
        atexit.register(self._flush_at_exit)

    # --- sending ------------------------------------------------------------
    def send(self, event_type: str, payload: dict[str, Any]) -> None:
        """Validate and publish one event of ``event_type`` to its topic (with pseudonymous ids when
        STREAMREC_ID_KEY is set; ``payload`` itself is not changed)."""
        if event_type not in TOPIC_OF:
            raise ValueError(f"event type {event_type!r} is unknown: must be one of {', '.join(TOPIC_OF)}")
        payload = self.ids.payload(payload)
        if self.validate:
            validate_event(event_type, payload)
        key = payload.get("item_id") if event_type == "item" else payload.get("user_id")
        self.send_raw(TOPIC_OF[event_type], str(key).encode() if key is not None else None, encode(payload))

    def purchase(self, user_id: str, item_id: str, *, value: float | None = None, currency: str | None = None,
                 context: dict[str, Any] | None = None, event_id: str | None = None, ts: float | None = None) -> str:
        """Publish a purchase (a conversion) of ``item_id`` by ``user_id`` to the purchases topic;
        returns its event id.

        Parameters
        ----------
        value, currency
            What it was worth, in an ISO 4217 currency (``"EUR"``): a value needs its currency.
        context
            Which served list led to it: ``{"rec_id": ..., "position": ...}`` (0-based), as the
            recommendation message named it, beside any other context (``session_id``, ``device``).
        event_id
            The dedupe key (default: a random one). Pass your own order id to make retries safe.
        ts
            Event time, epoch seconds (default: now).

        Raises
        ------
        InvalidEvent
            When the purchase breaks the contract (a negative value, a value without currency...).
        """
        import time
        import uuid

        extra: dict[str, Any] = {}
        for name, given in (("value", value), ("currency", currency), ("context", context)):
            if given is not None:
                extra[name] = given
        payload = make_event("purchase", event_id=event_id or uuid.uuid4().hex, user_id=user_id, item_id=item_id,
                             ts=time.time() if ts is None else ts, **extra)
        self.send("purchase", payload)
        return payload["event_id"]

    def request_recommendations(self, user_id: str, k: int = 10, request_id: str | None = None) -> str:
        """Ask the worker for ``user_id``'s top-k; the answer arrives on the recommendations topic
        with this ``request_id`` (returned). With STREAMREC_ID_KEY set, ``user_id`` is sent as its
        pseudonym (and the answer names the pseudonym)."""
        import uuid

        from stream.contract import validate_rec_request

        user_id = self.ids.user(user_id)
        body = {"schema": "v1", "request_id": request_id or uuid.uuid4().hex, "user_id": user_id, "k": k}
        validate_rec_request(body)
        self.send_raw("rec-requests", user_id.encode(), encode(body))
        return body["request_id"]

    def erase(self, user_id: str, *, ts: float | None = None, request_id: str | None = None) -> str:
        """Ask the workers to erase ``user_id`` as of ``ts`` (default: now); returns the request id,
        which the reply on user-erasures.done carries (:func:`consumers.sdk.erasure_done` waits for
        it). Every key the user has in Redis goes, and their profile on the users topic; their
        events up to ``ts`` never count again, later ones start a new user (stream/erasure.py).
        With STREAMREC_ID_KEY set, ``user_id`` is sent as its pseudonym."""
        import time
        import uuid

        from stream.erasure import request_message

        user_id = self.ids.user(user_id)
        request_id = request_id or uuid.uuid4().hex
        self.send_raw("user-erasures", user_id.encode(),
                      request_message(request_id, user_id, time.time() if ts is None else ts))
        return request_id

    def send_raw(self, logical_topic: str, key: bytes | None, value: bytes | None) -> None:
        """Publish bytes as they are (no validation, no pseudonyms) to ``topic_prefix + logical_topic``."""
        if self._closed:
            raise RuntimeError("EventProducer is closed")
        topic = self.settings.topic(logical_topic)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                # The local queue is full: serve delivery reports, which frees room.
                self._producer.poll(0.1)
        self.stats.sent += 1
        self._producer.poll(0)

    def _delivered(self, err, msg) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            if len(self.stats.errors) < 100:
                key = msg.key().decode(errors="replace") if msg.key() else ""
                self.stats.errors.append((msg.topic(), key, str(err)))
            log.error("delivery failed: topic=%s error=%s", msg.topic(), err)
        if self.on_delivery is not None:
            self.on_delivery(err, msg)

    def poll(self, timeout: float = 0.0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every queued message; raise :class:`DeliveryError` if any failed or timed out,
        at once when the brokers refused the login or the TLS handshake."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            remaining = self._producer.flush(min(0.5, max(deadline - time.monotonic(), 0.0)))
            if not remaining or time.monotonic() >= deadline:
                break
            if self.errors.fatal is not None:
                raise DeliveryError(f"{remaining} message(s) undelivered: {self.errors.message()}", self.stats.errors)
        if remaining:
            raise DeliveryError(f"{remaining} message(s) still undelivered after {timeout:.0f} s", self.stats.errors)
        if self.stats.failed:
            raise DeliveryError(
                f"{self.stats.failed} of {self.stats.sent} message(s) failed delivery; first: {self.stats.errors[:1]}",
                self.stats.errors,
            )

    def _flush_at_exit(self) -> None:
        if not self._closed:
            remaining = self._producer.flush(10.0)
            if remaining:
                log.error("exiting with %d message(s) undelivered", remaining)

    def close(self, timeout: float = 30.0) -> None:
        if not self._closed:
            try:
                self.flush(timeout)
            finally:
                self._closed = True
                atexit.unregister(self._flush_at_exit)

    def __enter__(self) -> "EventProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
