"""Reading streamrec's output topics with confluent-kafka: recommendations, dead letters, drift alerts.

Readers assign partitions by hand and never commit (``group.id`` is only a label), so
they never disturb each other or the worker. ``read_*`` calls read from the beginning
to the current end; ``follow_*`` calls go on waiting for new messages.

With STREAMREC_ID_KEY set, a user is looked up by their raw id: the SDK hashes it as the
producer SDK did (stream/pseudonyms.py), and the messages it returns name the pseudonym.
Calls to a worker's HTTP API send STREAMREC_HTTP_TOKEN as a bearer token when it is set.

.. code-block:: python

    reader = TopicReader("recommendations")
    latest = reader.latest_by_key()            # user_id -> their newest list
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

from stream.config import Settings, get_settings
from stream.preflight import KafkaErrorWatch
from stream.pseudonyms import Pseudonyms

__all__ = ["TopicReader", "Message", "DeadLetter", "murmur2_partition", "recommendations", "dead_letters",
           "drift_alerts", "latest_recommendations", "similar_items", "served_recommendations", "erasure_done",
           "watermarks"]


def _murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the default partitioner of the Java client and of aiokafka)."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = length - tail
    if tail >= 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition a key lands in, as Kafka's default partitioner picks it.

    >>> murmur2_partition(b"u000001", 4) in range(4)
    True
    """
    return (_murmur2(key) & 0x7FFFFFFF) % partitions


def watermarks(consumer, partitions, *, timeout: float = 10.0) -> list[tuple[int, int]]:
    """``(low, high)`` offsets of each of ``partitions`` (confluent-kafka ``TopicPartition``s),
    retrying what Kafka says may pass (a topic just created has no leaders for a moment) for up
    to ``timeout`` seconds; then a RuntimeError that names the partition."""
    from confluent_kafka import KafkaError, KafkaException

    # the broker electing leaders: not marked retriable by librdkafka, but it passes
    electing = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION}
    deadline = time.monotonic() + timeout
    out = []
    for tp in partitions:
        while True:
            try:
                out.append(consumer.get_watermark_offsets(tp, timeout=max(deadline - time.monotonic(), 0.5)))
                break
            except KafkaException as exc:
                err = exc.args[0]
                if not (err.retriable() or err.code() in electing) or time.monotonic() >= deadline:
                    raise RuntimeError(f"reading the offsets of {tp.topic} [{tp.partition}]: {err.str()}") from None
                time.sleep(0.2)
    return out


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp: float | None

    def json(self) -> Any:
        return json.loads(self.value) if self.value is not None else None


@dataclass(frozen=True)
class DeadLetter:
    """A rejected message: the original bytes and why."""

    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def from_message(cls, msg: Message) -> "DeadLetter":
        h = msg.headers
        return cls(
            reason=h.get("streamrec.reason", b"").decode(),
            detail=h.get("streamrec.detail", b"").decode(errors="replace"),
            source_topic=h.get("streamrec.source.topic", b"").decode(),
            source_partition=int(h.get("streamrec.source.partition", b"-1")),
            source_offset=int(h.get("streamrec.source.offset", b"-1")),
            key=msg.key,
            value=msg.value,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason, "detail": self.detail, "source_topic": self.source_topic,
            "source_partition": self.source_partition, "source_offset": self.source_offset,
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "value": self.value.decode(errors="replace") if self.value is not None else None,
        }


class TopicReader:
    """Reads one of streamrec's topics (its logical name; the prefix is added)."""

    def __init__(self, logical_topic: str, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.topic = self.settings.topic(logical_topic)
        self.errors = KafkaErrorWatch(self.settings)

    def _consumer(self):
        from confluent_kafka import Consumer

        return Consumer({
            **self.settings.kafka_client_config(),
            # a refused login or TLS handshake ends a read with one clear error, not a wait
            "error_cb": self.errors,
            "group.id": f"streamrec-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        })

    def _partitions(self, consumer, timeout: float) -> list[int]:
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + timeout
        while True:  # in short steps: a refused login or TLS handshake ends the wait at once
            try:
                meta = consumer.list_topics(self.topic, timeout=min(1.0, max(deadline - time.monotonic(), 0.1)))
                break
            except KafkaException as exc:
                consumer.poll(0)  # serves error_cb
                self.errors.check()
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"reading {self.topic}: {self.errors.message(exc.args[0])}") from None
        meta = meta.topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        return sorted(meta.partitions)

    def tail(self, timeout: float = 10.0):
        """A confluent-kafka consumer assigned every partition at its end as it is now: it reads
        only what is written after this call (the caller closes it)."""
        from confluent_kafka import TopicPartition

        consumer = self._consumer()
        try:
            parts = self._partitions(consumer, timeout)
            if not parts:
                raise RuntimeError(f"reading {self.topic}: the topic has no partitions (not created yet? "
                                   "`streamrec topics` or a worker's start creates it)")
            tps = [TopicPartition(self.topic, p) for p in parts]
            ends = [high for _, high in watermarks(consumer, tps, timeout=timeout)]
            # explicit end offsets, not OFFSET_END (resolved at the first fetch, later than now)
            consumer.assign([TopicPartition(self.topic, p, end) for p, end in zip(parts, ends)])
        except BaseException:
            consumer.close()
            raise
        return consumer

    def read(self, *, key: bytes | None = None, follow: bool = False, timeout: float = 10.0,
             idle_timeout: float | None = None) -> Iterator[Message]:
        """Messages from the beginning; with ``key``, only that key's partition and key.

        Without ``follow`` it stops at the end of every partition (as it was when reached).
        With ``follow`` it waits for more, until ``idle_timeout`` seconds pass with nothing new
        (None: forever).
        """
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

        consumer = self._consumer()
        try:
            parts = self._partitions(consumer, timeout)
            if not parts:
                return
            if key is not None:
                parts = [murmur2_partition(key, len(parts))]
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
            at_end: set[int] = set()
            last_new = time.monotonic()
            while True:
                msg = consumer.poll(0.2)
                if msg is None:
                    self.errors.check()
                    if not follow and len(at_end) == len(parts):
                        return
                    if idle_timeout is not None and time.monotonic() - last_new > idle_timeout:
                        return
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        if not follow and len(at_end) == len(parts):
                            return
                        continue
                    raise RuntimeError(f"reading {self.topic}: {msg.error()}")
                at_end.discard(msg.partition())
                last_new = time.monotonic()
                if key is not None and msg.key() != key:
                    continue
                ts_type, ts = msg.timestamp()
                yield Message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                              dict(msg.headers() or []), ts / 1000.0 if ts_type else None)
        finally:
            consumer.close()

    def latest_by_key(self) -> dict[str, Message]:
        latest: dict[str, Message] = {}
        for msg in self.read():
            if msg.key is not None:
                latest[msg.key.decode(errors="replace")] = msg
        return latest


def recommendations(settings: Settings | None = None, *, user_id: str | None = None, follow: bool = False,
                    idle_timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Recommendation lists (decoded JSON), optionally one user's only (their raw id: with
    STREAMREC_ID_KEY set it is hashed here)."""
    reader = TopicReader("recommendations", settings)
    key = Pseudonyms.from_settings(reader.settings).user(user_id).encode() if user_id else None
    for msg in reader.read(key=key, follow=follow, idle_timeout=idle_timeout):
        yield msg.json()


def latest_recommendations(user_id: str, settings: Settings | None = None) -> dict[str, Any] | None:
    """A user's newest list on the recommendations topic, or None."""
    last = None
    for rec in recommendations(settings, user_id=user_id):
        last = rec
    return last


def dead_letters(settings: Settings | None = None, *, follow: bool = False,
                 idle_timeout: float | None = None) -> Iterator[DeadLetter]:
    for msg in TopicReader("events.dlq", settings).read(follow=follow, idle_timeout=idle_timeout):
        yield DeadLetter.from_message(msg)


def drift_alerts(settings: Settings | None = None, *, follow: bool = False,
                 idle_timeout: float | None = None) -> Iterator[dict[str, Any]]:
    for msg in TopicReader("alerts.drift", settings).read(follow=follow, idle_timeout=idle_timeout):
        yield msg.json()


def erasure_done(request_id: str, settings: Settings | None = None, *, timeout: float = 30.0) -> dict[str, Any] | None:
    """The worker's reply to an erasure request (:meth:`producers.sdk.EventProducer.erase`), from
    user-erasures.done: ``{"request_id", "status": "erased" | "already_erased", "found",
    "erased_at", "done_at"}`` (stream/erasure.py); None when none came within ``timeout`` seconds
    of quiet on its partition."""
    reader = TopicReader("user-erasures.done", settings)
    for msg in reader.read(key=request_id.encode(), follow=True, idle_timeout=timeout):
        return msg.json()
    return None


def _get_json(path: str, *, url: str | None, settings: Settings | None, timeout: float) -> dict[str, Any]:
    """GET a worker's ``path`` (with the bearer token when STREAMREC_HTTP_TOKEN is set) as JSON.
    Raises ``LookupError`` (404), ``ValueError`` (400), ``PermissionError`` (401, 403)."""
    import urllib.error
    import urllib.request

    s = settings or get_settings()
    base = (url or f"http://{s.web_host}:{s.web_port}").rstrip("/")
    request = urllib.request.Request(f"{base}{path}", headers=s.http_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        message = json.loads(body).get("error", body) if body.startswith("{") else body
        if exc.code == 404:
            raise LookupError(message) from None
        if exc.code == 400:
            raise ValueError(message) from None
        if exc.code in (401, 403):
            raise PermissionError(f"{base} answered {exc.code}: {message}") from None
        raise


def similar_items(item_id: str, k: int = 10, *, url: str | None = None, settings: Settings | None = None,
                  timeout: float = 10.0) -> dict[str, Any]:
    """Items like ``item_id``, as a worker answers ``GET /items/{item_id}/similar?k=``:
    ``{"item_id", "source": "cooccurrence" | "mf", "items": [{"item_id", "score", "rank"}]}``.

    ``url``: a worker's base URL (default ``http://<STREAMREC_WEB_HOST>:<STREAMREC_WEB_PORT>``).
    Raises ``LookupError`` for an item the worker does not know, ``ValueError`` for a bad ``k``,
    ``PermissionError`` when the worker asks for a token this process does not have.
    """
    import urllib.parse

    return _get_json(f"/items/{urllib.parse.quote(item_id, safe='')}/similar?k={int(k)}", url=url,
                     settings=settings, timeout=timeout)


def served_recommendations(user_id: str, k: int = 10, *, url: str | None = None, settings: Settings | None = None,
                           timeout: float = 10.0) -> dict[str, Any]:
    """A user's list as a worker would serve it now (``GET /recommendations/{user_id}?k=``), by
    their raw id (hashed here when STREAMREC_ID_KEY is set). Errors as :func:`similar_items`."""
    import urllib.parse

    s = settings or get_settings()
    user = Pseudonyms.from_settings(s).user(user_id)
    return _get_json(f"/recommendations/{urllib.parse.quote(user, safe='')}?k={int(k)}", url=url, settings=s,
                     timeout=timeout)
