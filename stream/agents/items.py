"""The item side: the item-updates owner (this worker's items, one writer each) and the
item-factors reader (every item, into this worker's copy of the table)."""

from __future__ import annotations

import asyncio
import logging
import time

from stream.agents.retry import BACKOFF, until_done
from stream.agents.runtime import runtime
from stream.app import app, settings
from stream.engine.items import Gather
from stream.engine.messages import decode_update, encode_row
from stream.engine.validate import Record
from stream.models.sharded import item_partition
from stream.metrics import METRICS

log = logging.getLogger(__name__)


@app.task
async def own_items() -> None:
    """The item-updates partitions this worker owns: each item's one writer.

    A confluent-kafka consumer of its own (group ``<app id>-item-owners``), not a Faust agent:
    the ingest agents' consumer fetches little per partition (STREAMREC_CONSUMER_FETCH_BYTES),
    which would starve these large messages, and librdkafka fetches in its own threads. The group
    assigns each partition to one worker; a partition taken over is loaded from Redis first
    (ItemOwner.take). Offsets are committed after the updates are applied and their rows
    published; a redelivered update is dropped by its owner (at or below its partition's applied
    offset), and so is an outbox resend (its id, applied within STREAMREC_OWNER_DEDUPE_SECONDS).
    """
    from confluent_kafka import Consumer, TopicPartition

    await runtime.items_ready.wait()  # own items only once their published rows are read back
    topic = settings.topic("item-updates")
    owner = runtime.owner
    attempt = 0
    while True:
        window = Gather(settings.item_publish_seconds)  # partition -> records read, not applied yet

        def assigned(consumer, partitions) -> None:
            for tp in partitions:
                owner.assign(tp.partition)

        def revoked(consumer, partitions) -> None:
            for tp in partitions:
                window.drop(tp.partition)  # its new owner reads them again
                owner.release(tp.partition)

        conf = {**settings.kafka_client_config(), "group.id": f"{settings.app_id}-item-owners",
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "session.timeout.ms": int(settings.session_timeout_seconds * 1000)}
        if settings.worker_id:
            conf["group.instance.id"] = f"{settings.worker_id}-item-owner"  # a quick restart keeps its partitions
        consumer = Consumer(conf)
        try:
            consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
            while True:
                for m in consumer.consume(10_000, 0):  # what librdkafka has fetched; never waits
                    if m.error() is not None:
                        raise RuntimeError(f"reading {topic}: {m.error()}")
                    window.add(m.partition(), m)
                # gather for a moment: a row changed by many updates is published once; one
                # partition at a time, spread over the period (Gather), between the ingest batches
                if window.due():
                    batch = window.take()
                    await _apply(batch)
                    consumer.commit(offsets=[TopicPartition(topic, p, msgs[-1].offset() + 1)
                                             for p, msgs in batch.items()], asynchronous=True)
                attempt = 0
                # another partition due already (an owner of many: their pace is shorter than this
                # loop's tick): only let the other tasks run, so each is still taken once a period
                await asyncio.sleep(0 if window.due() else 0.01)
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            log.exception("owning item-updates failed; reconnecting in %.1f s (uncommitted updates are read again)",
                          delay)
            await asyncio.sleep(delay)
        finally:
            consumer.close()


async def _apply(batch: dict[int, list]) -> None:
    """Apply each partition's updates once and publish the rows they changed."""
    owner = runtime.owner
    for partition, msgs in sorted(batch.items()):
        updates, offsets, bad = [], [], []
        for m in msgs:
            try:
                updates.append(decode_update(m.value() or b""))
                offsets.append(m.offset())
            except ValueError as exc:
                rec = Record(m.topic(), m.partition(), m.offset(), m.key(), m.value())
                bad.append((rec, "invalid_item_update", str(exc)))
        if bad:
            await until_done("dead-lettering item updates", lambda b=bad: runtime.ingest.dead_letter(b))
        applied, initialised = owner.applied, owner.initialised
        # applied once (the owner drops what it applied before: redeliveries by their offsets, outbox
        # resends by their ids); publishing is retried until it passes
        rows = await until_done(f"applying {len(updates)} item updates",
                                lambda p=partition, u=updates, o=offsets: owner.apply(p, u, o))
        METRICS.item_updates_applied_total.inc(owner.applied - applied)
        METRICS.items_initialised_total.inc(owner.initialised - initialised)
        if rows:
            await until_done(f"publishing {len(rows)} item rows", lambda r=rows: _publish(r))
    METRICS.model_items.set(runtime.table.n_items)


async def _publish(rows) -> None:
    for row in rows:
        await runtime.publisher.item_row(row.item_id, encode_row(row))
    await runtime.publisher.flush()


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
                    now = time.time()
                    # rows of the partitions this worker owns come back as old news: not even decoded
                    mine = runtime.owner.taken
                    values = [m.value() for m in msgs if not mine or m.key() is None
                              or item_partition(m.key().decode(errors="replace"), settings.partitions) not in mine]
                    runtime.copy.own += len(msgs) - len(values)
                    for row in runtime.copy.apply(values):
                        # how old a row is when it reaches this worker (its own rows too: the topic's delay)
                        METRICS.embedding_age_seconds.labels("item").observe(max(0.0, now - row.mf.updated_at))
                    METRICS.model_items.set(runtime.table.n_items)
                if ends:  # where the reader stands, not the last offset seen (compaction may have removed it)
                    for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                        if tp.offset >= ends[tp.partition]:
                            del ends[tp.partition]
                if not ends and not runtime.items_ready.is_set():
                    log.info("item rows loaded: %d items", runtime.table.n_items)
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
