"""Everything a test's namespace holds, for privacy checks: every Redis key under its prefix with
every value, read by type, and every record (key, value, headers) of every one of its topics.

The pseudonymous-id test uses it to show no raw id is stored, the erasure test that a user's
traces are gone. Values stored packed are decoded too: a user record (stream/state/packing.py)
adds its user id, its history's item ids and its behaviour segment names as parts of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from stream.config import Settings

__all__ = ["Stored", "redis_contents", "kafka_contents", "json_field_values", "namespace_topics"]


@dataclass(frozen=True)
class Stored:
    """One stored thing: where it is (a Redis key and its type, or topic/partition/offset) and its
    parts as bytes (Redis: the key and every member, field, value and score; Kafka: key, value,
    header names and values)."""

    where: str
    kind: str
    parts: tuple[bytes, ...]

    def contains(self, needle: bytes) -> bool:
        return any(needle in part for part in self.parts)


def redis_contents(settings: Settings) -> list[Stored]:
    """Every key under ``settings.redis_prefix`` with its whole value, read as its type says."""
    client = settings.redis_client()
    out = []
    for key in client.scan_iter(f"{settings.redis_prefix}:*", count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            parts = [client.get(key) or b""]
        elif kind == "hash":
            parts = [x for pair in client.hgetall(key).items() for x in pair]
        elif kind == "set":
            parts = list(client.smembers(key))
        elif kind == "zset":
            parts = [x for member, score in client.zrange(key, 0, -1, withscores=True) for x in (member, repr(score).encode())]
        elif kind == "list":
            parts = client.lrange(key, 0, -1)
        elif kind == "none":  # expired between SCAN and TYPE
            continue
        else:
            raise AssertionError(f"redis_contents: key {key!r} has type {kind}, which this scan does not read")
        out.append(Stored(key.decode(errors="replace"), kind, (key, *parts, *_decoded(key, parts))))
    return out


def _decoded(key: bytes, parts: list[bytes]) -> list[bytes]:
    """The strings inside a packed user record (its magic starts it), else nothing."""
    from stream.state.packing import unpack_user

    if len(parts) != 1 or not parts[0].startswith(b"SRU1"):
        return []
    uid = key.decode(errors="replace").rsplit(":user:", 1)[-1]
    rec = unpack_user(uid, parts[0], dim=-1)  # the MF row (numbers) is left out
    strings = [uid, *rec.history]
    if rec.behaviour is not None:
        strings += [rec.behaviour.segment or "", rec.behaviour.pending or ""]
    return [x.encode() for x in strings if x]


def namespace_topics(settings: Settings) -> list[str]:
    """The topics of a test's namespace: its prefix's, and the Faust app's internal ones."""
    from confluent_kafka.admin import AdminClient

    topics = AdminClient(settings.kafka_client_config()).list_topics(timeout=10).topics
    return sorted(t for t in topics if t.startswith(settings.topic_prefix) or t.startswith(f"{settings.app_id}-"))


def kafka_contents(settings: Settings) -> list[Stored]:
    """Every record of every topic of the namespace, from the beginning to the current end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    out = []
    consumer = Consumer({**settings.kafka_client_config(), "group.id": "privacy-scan", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        meta = consumer.list_topics(timeout=10).topics
        parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in namespace_topics(settings) for p in meta[t].partitions]
        marks = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10) for tp in parts}
        wanted = {where for where, (low, high) in marks.items() if high > low}
        consumer.assign([tp for tp in parts if (tp.topic, tp.partition) in wanted])
        while wanted:
            msg = consumer.poll(5.0)
            if msg is None:
                raise AssertionError(f"kafka_contents: no record within 5 s; partitions not read to their end: {wanted}")
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    wanted.discard((msg.topic(), msg.partition()))
                    continue
                raise AssertionError(f"kafka_contents: {msg.error()}")
            headers = [x for name, value in (msg.headers() or []) for x in (name.encode(), value or b"")]
            out.append(Stored(f"{msg.topic()}[{msg.partition()}]@{msg.offset()}", "record",
                              (msg.key() or b"", msg.value() or b"", *headers)))
    finally:
        consumer.close()
    return out


def json_field_values(blob: bytes, field: str) -> Iterator[Any]:
    """The values of ``field`` anywhere in ``blob`` decoded as JSON (nothing when it is not JSON)."""
    try:
        doc = json.loads(blob)
    except (ValueError, UnicodeDecodeError):
        return
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if field in node:
                yield node[field]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
