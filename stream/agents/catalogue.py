"""User profiles (users topic) and item metadata (items topic), both compacted.

A new item's categories also go to its owner on item-updates, which starts the item's
model row from the mean row of items of the same categories (cold start).

A profile's segment is the values of the configured attributes
(STREAMREC_SEGMENT_ATTRIBUTES), joined by '/'; without them, the default segment.
"""

from __future__ import annotations

import json
import logging

from stream.agents.messages import encode_init
from stream.agents.pipeline import Record
from stream.agents.runtime import runtime
from stream.app import app, items_topic, settings, users_topic
from stream.models.sharded import item_partition
from stream.contract import InvalidEvent, validate_event
from stream.metrics import METRICS

__all__ = ["segment_of", "users", "items"]

log = logging.getLogger(__name__)


def segment_of(attributes: dict[str, str], names: list[str], default: str) -> str:
    """The segment named by a profile's attributes.

    >>> segment_of({"plan": "pro", "country": "fr"}, ["plan"], "all")
    'pro'
    >>> segment_of({}, ["plan"], "all")
    'all'
    """
    values = [attributes[n] for n in names if attributes.get(n)]
    return "/".join(values) if values else default


async def _records(stream, kind: str, redis_key):
    """Validated records of a compacted topic; a tombstone deletes the key's hash, a bad
    record is dead-lettered. Yields Event objects."""
    async for event in stream.events():
        msg = event.message
        if msg.value is None:  # a tombstone: the record was deleted upstream
            if msg.key:
                await runtime.redis.delete(redis_key(msg.key.decode(errors="replace")))
            continue
        try:
            yield validate_event(kind, msg.value)
        except InvalidEvent as exc:
            await runtime.ingestor.reject(Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value),
                                          exc.reason, str(exc))
            await runtime.ingestor.publisher.flush()


@app.agent(users_topic, concurrency=1)
async def users(stream):
    async for profile in _records(stream, "user", runtime.keys.profile):
        segment = segment_of(profile.attributes, settings.segment_attribute_list, settings.default_segment)
        key = runtime.keys.profile(profile.user_id)
        pipe = runtime.redis.pipeline(transaction=True)
        pipe.hget(key, "_segment")
        pipe.delete(key)
        pipe.hset(key, mapping={**profile.attributes, "_segment": segment, "_ts": repr(profile.ts)})
        pipe.sadd(runtime.keys.segments, segment)
        previous = (await pipe.execute())[0]
        METRICS.profiles_total.inc()
        if previous is not None and previous.decode() != segment:
            METRICS.segment_moves_total.inc()
            log.info("user %s moved from segment %s to %s", profile.user_id, previous.decode(), segment)


@app.agent(items_topic, concurrency=1)
async def items(stream):
    async for item in _records(stream, "item", runtime.keys.item):
        mapping = {
            "categories": json.dumps(item.categories),
            "created_at": repr(float(item.raw["created_at"])),
        }
        if item.raw.get("features") is not None:
            mapping["features"] = json.dumps(item.raw["features"])
        await runtime.redis.hset(runtime.keys.item(item.item_id), mapping=mapping)
        # the item's one owner starts its model row from its categories (cold start)
        await runtime.publisher.item_gradients(item_partition(item.item_id, settings.partitions),
                                               encode_init(item.item_id, item.categories))
        METRICS.items_total.inc()
