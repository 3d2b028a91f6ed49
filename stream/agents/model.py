"""The MF model's item side: the item-updates agent (this worker's items) and the
item-factors reader (every item, into this worker's copy)."""

from __future__ import annotations

import asyncio
import logging
import ssl

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


def _security() -> dict:
    s = settings
    kwargs: dict = {"security_protocol": s.kafka_security_protocol}
    if s.kafka_security_protocol.endswith("SSL"):
        kwargs["ssl_context"] = ssl.create_default_context(cafile=s.kafka_ssl_cafile or None)
    if s.kafka_security_protocol.startswith("SASL"):
        kwargs.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_plain_username=s.kafka_sasl_username,
                      sasl_plain_password=s.kafka_sasl_password.get_secret_value())
    return kwargs


def _partitions(topic: str) -> list[int]:
    from confluent_kafka.admin import AdminClient

    meta = AdminClient(settings.kafka_client_config()).list_topics(topic, timeout=10).topics.get(topic)
    return sorted(meta.partitions) if meta is not None and meta.error is None else []


@app.task
async def read_item_factors() -> None:
    """Every partition of item-factors, from the beginning, with no consumer group (a plain
    aiokafka consumer: Faust's GlobalTable has recovery loops, see docs/ARCHITECTURE.md)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.topic("item-factors")
    attempt = 0
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest", **_security())
        try:
            await consumer.start()
            parts = await asyncio.to_thread(_partitions, topic)
            if not parts:
                raise RuntimeError(f"topic {topic} has no partitions (not created?)")
            tps = [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            log.info("reading item rows from %s (%d messages at start)", topic, sum(ends.values()))
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for msgs in batches.values():
                    runtime.item_factors.apply([m.value for m in msgs])
                if not runtime.items_ready.is_set():
                    positions = [await consumer.position(tp) for tp in tps]
                    if all(pos >= ends[tp] for pos, tp in zip(positions, tps)):
                        log.info("item rows loaded: %d items", runtime.mf.n_items)
                        runtime.items_ready.set()
                attempt = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            log.exception("reading item-factors failed; reconnecting in %.1f s (rows read stay)", delay)
            await asyncio.sleep(delay)
        finally:
            await consumer.stop()
