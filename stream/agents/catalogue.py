"""User profiles (users topic) and item metadata (items topic), both compacted.

A new item's categories also go to its owner on item-updates, which starts the item's
model row from the mean row of items of the same categories (cold start).

A profile's segment is named as offline (stream/models/segments.py): ``name:value`` of
each configured attribute (STREAMREC_SEGMENT_ATTRIBUTES) joined by '/', a numeric ``age``
in bands, e.g. ``age:25-34/gender:F``; with a tuned SegmentedRanker configuration, the
segmenter it was tuned with (rare values folded into ``other``), so the worker's segment
ids are the ones the per-segment parameters name. A profile with none of the attributes is
in the default segment; past STREAMREC_MAX_SEGMENTS segments, new ones go to ``other``.
"""

from __future__ import annotations

import json
import logging

from stream.agents.messages import encode_init
from stream.agents.pipeline import Record
from stream.agents.retry import until_done
from stream.agents.runtime import runtime
from stream.app import app, items_topic, settings, users_topic
from stream.models.sharded import item_partition
from stream.contract import InvalidEvent, validate_event
from stream.metrics import METRICS
from stream.models.segments import OTHER, ProfileSegmenter

__all__ = ["segment_of", "profile_segmenter", "users", "items"]

log = logging.getLogger(__name__)


def profile_segmenter(config: dict | None, attributes: list[str], max_segments: int) -> ProfileSegmenter:
    """The segmenter a tuned configuration was made with (``source.segmenter``) when it names
    the same attributes, else one that keeps every value.

    >>> profile_segmenter(None, ["plan"], 32).segment_of({"plan": "pro"})
    'plan:pro'
    """
    fitted = ((config or {}).get("source") or {}).get("segmenter")
    if fitted and list(fitted.get("attributes", [])) == list(attributes):
        return ProfileSegmenter(**fitted)
    return ProfileSegmenter(attributes, max_segments=max_segments)


def segment_of(attributes: dict[str, str], segmenter: ProfileSegmenter, default: str) -> str:
    """The segment named by a profile's attributes.

    >>> seg = ProfileSegmenter(["age", "plan"])
    >>> segment_of({"plan": "pro", "age": "31", "country": "fr"}, seg, "all"), segment_of({"country": "fr"}, seg, "all")
    ('age:25-34/plan:pro', 'all')
    """
    if not any(attributes.get(n) for n in segmenter.attributes):
        return default
    return segmenter.segment_of(attributes)


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
            rejected = [(Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value), exc)]
            await until_done("dead-lettering a record", lambda: runtime.ingestor.dead_letter(rejected))


@app.agent(users_topic, concurrency=1)
async def users(stream):
    known: set[str] = set()
    async for profile in _records(stream, "user", runtime.keys.profile):
        segment = segment_of(profile.attributes, runtime.segmenter, settings.default_segment)
        if segment != settings.default_segment and segment not in known:
            if not await runtime.redis.sismember(runtime.keys.segments, segment) \
                    and await runtime.redis.scard(runtime.keys.segments) >= settings.max_segments:
                segment = OTHER
            else:
                known.add(segment)  # segments are few: the check is made once per segment
        key = runtime.keys.profile(profile.user_id)
        pipe = runtime.redis.pipeline(transaction=True)
        pipe.hget(key, "_segment")
        pipe.delete(key)
        pipe.hset(key, mapping={**profile.attributes, "_segment": segment, "_ts": repr(profile.ts)})
        pipe.sadd(runtime.keys.segments, segment)
        previous = (await pipe.execute())[0]
        METRICS.profiles_total.inc()
        if previous is not None and previous.decode() != segment:
            METRICS.segment_moves_total.labels("profile").inc()
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

        async def start_row(item=item):
            await runtime.publisher.item_gradients(item_partition(item.item_id, settings.partitions),
                                                   encode_init(item.item_id, item.categories))
            await runtime.publisher.flush()

        # the item's one owner starts its model row from its categories (cold start); sent
        # again until delivered, before the item's offset is acknowledged
        await until_done(f"starting item {item.item_id}'s model row", start_row)
        METRICS.items_total.inc()
