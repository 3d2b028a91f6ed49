"""User profiles (users topic) and item metadata (items topic), both compacted.

A profile's segment is named as offline (:func:`stream.models.segments.profile.profile_segment`):
``name:value`` of each configured attribute (STREAMREC_SEGMENT_ATTRIBUTES) joined by '/', a
numeric ``age`` in bands; with a tuned SegmentedRanker configuration, the segmenter it was tuned
with. Past STREAMREC_MAX_SEGMENTS segments, new ones go to ``other`` (the engine's rule).

A new item's categories also go to its owner on item-updates, which starts the item's model row
from the mean row of items of the same categories (cold start).

A profile of an erased user with a ts at or before the erasure is dropped (counted); a tombstone
(the worker sends one when it erases a user) deletes the stored profile.
"""

from __future__ import annotations

import json
import logging

from stream.agents.retry import until_done
from stream.agents.runtime import runtime
from stream.app import app, items_topic, settings, users_topic
from stream.contract import InvalidEvent, validate_event
from stream.engine.messages import encode_init
from stream.engine.validate import Record
from stream.metrics import METRICS
from stream.models.sharded import item_partition

__all__ = ["users", "items"]

log = logging.getLogger(__name__)


async def _records(stream, kind: str, on_tombstone):
    """Validated records of a compacted topic; a tombstone calls ``on_tombstone(key)``, a bad
    record is dead-lettered. Yields Event objects."""
    async for event in stream.events():
        msg = event.message
        if msg.value is None:  # a tombstone: the record was deleted upstream
            if msg.key:
                key = msg.key.decode(errors="replace")
                await until_done(f"deleting {kind} {key}", lambda: on_tombstone(key))
            continue
        try:
            yield validate_event(kind, msg.value)
        except InvalidEvent as exc:
            rejected = [(Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value), exc.reason, str(exc))]
            await until_done("dead-lettering a record", lambda: runtime.ingest.dead_letter(rejected))


@app.agent(users_topic, concurrency=1)
async def users(stream):
    async for profile in _records(stream, "user", runtime.state.delete_profile):
        applied = await until_done(
            f"applying {profile.user_id}'s profile",
            lambda p=profile: runtime.engine.apply_profile(p.user_id, p.attributes, p.ts))
        if applied is None:  # the user was erased after this profile: it does not bring them back
            METRICS.erased_events_dropped_total.labels("user").inc()
            continue
        segment, previous = applied
        METRICS.profiles_total.inc()
        if previous is not None and previous != segment:
            METRICS.segment_moves_total.labels("profile").inc()
            log.info("user %s moved from segment %s to %s", profile.user_id, previous, segment)


@app.agent(items_topic, concurrency=1)
async def items(stream):
    async for item in _records(stream, "item", lambda key: runtime.state.put_item(key, None)):
        mapping = {"categories": json.dumps(item.categories), "created_at": repr(float(item.raw["created_at"]))}
        if item.raw.get("features") is not None:
            mapping["features"] = json.dumps(item.raw["features"])
        await until_done(f"storing item {item.item_id}", lambda m=mapping, i=item: runtime.state.put_item(i.item_id, m))

        async def start_row(item=item):
            await runtime.publisher.item_update(item_partition(item.item_id, settings.partitions),
                                                encode_init(item.item_id, item.categories))
            await runtime.publisher.flush()

        # the item's one owner starts its model row from its categories (cold start); sent
        # again until delivered, before the item's offset is acknowledged (the owner applies it once)
        await until_done(f"starting item {item.item_id}'s model row", start_row)
        METRICS.items_total.inc()
