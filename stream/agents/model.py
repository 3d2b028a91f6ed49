"""The MF model's item side: the item-updates agent (this worker's items) and the
item-factors reader (every item, into this worker's copy)."""

from __future__ import annotations

import asyncio
import logging

from stream.agents.ingest import to_record
from stream.agents.retry import BACKOFF, until_done
from stream.agents.runtime import runtime
from stream.app import app, item_updates_topic, settings

log = logging.getLogger(__name__)



# concurrency=1: one writer per item row, and Faust's offsets stay in order.
@app.agent(item_updates_topic, concurrency=1)
async def learn_items(stream):
    await runtime.items_ready.wait()  # own items only once their published rows are read back
    # A longer window than the ingest agent's: a row changed by many messages is published once.
    async for events in stream.take_events(10_000, within=settings.item_publish_seconds):
        runtime.item_owner.apply([to_record(ev) for ev in events])
        # the gradients are applied once; publishing is retried until it succeeds
        await until_done("publishing item rows", runtime.item_owner.publish)


@app.task
async def read_item_factors() -> None:
    """Every partition of item-factors, from the beginning, with no consumer group (a plain
    confluent-kafka consumer, assigned by hand and never committing: Faust's GlobalTable has
    recovery loops, see docs/ARCHITECTURE.md). librdkafka fetches in its own threads; this
    task takes what has arrived without blocking the event loop."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = settings.topic("item-factors")
    attempt = 0
    while True:
        consumer = Consumer({**settings.kafka_client_config(),
                             "group.id": f"{settings.app_id}-item-factors-reader",  # a label: it never commits
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            meta = (await asyncio.to_thread(consumer.list_topics, topic, 10)).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise RuntimeError(f"topic {topic} has no partitions (not created?)")
            parts = sorted(meta.partitions)
            ends = {}  # partition -> end offset at start (what must be read before serving)
            for p in parts:
                low, high = await asyncio.to_thread(consumer.get_watermark_offsets, TopicPartition(topic, p), 10)
                if high > low:
                    ends[p] = high
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            log.info("reading item rows from %s (%d messages at start)", topic, sum(ends.values()))
            while True:
                msgs = consumer.consume(5000, 0)  # what librdkafka has fetched already; never waits
                for m in msgs:
                    if m.error() is not None:
                        raise RuntimeError(f"reading {topic}: {m.error()}")
                if msgs:
                    runtime.item_factors.apply([m.value() for m in msgs])
                if ends:  # where the reader stands, not the last offset seen (compaction may have removed it)
                    for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                        if tp.offset >= ends[tp.partition]:
                            del ends[tp.partition]
                if not ends and not runtime.items_ready.is_set():
                    log.info("item rows loaded: %d items", runtime.mf.n_items)
                    runtime.items_ready.set()
                attempt = 0
                await asyncio.sleep(0 if len(msgs) == 5000 else 0.02)
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            log.exception("reading item-factors failed; reconnecting in %.1f s (rows read stay)", delay)
            await asyncio.sleep(delay)
        finally:
            consumer.close()
