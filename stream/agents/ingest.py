"""Interaction events (clicks, dwell, skips, impressions, purchases) in micro-batches, into the engine."""

from __future__ import annotations

import logging
import time

from stream.agents.retry import until_done
from stream.agents.runtime import runtime
from stream.app import app, event_topic, settings
from stream.engine.validate import Record
from stream.faustapp.take import batches
from stream.metrics import METRICS

log = logging.getLogger(__name__)


def to_record(event) -> Record:
    msg = event.message
    ts = msg.timestamp / 1000.0 if msg.timestamp and msg.timestamp > 1e11 else msg.timestamp
    return Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value, ts)


# concurrency=1: with more, gaps in acked offsets make Faust commit wrong offsets.
@app.agent(event_topic, concurrency=1)
async def ingest(stream):
    METRICS.worker_up.set(1)
    _ = runtime.ingest  # built (and its libraries imported) before the first batch, not in its time
    await runtime.items_ready.wait()  # learn against the item rows as they are, not from seeds
    # a batch is acked after the loop body, even if it raised (Faust's take_events does the same):
    # so the body retries until the batch is handled (every effect is idempotent), it never drops one.
    async for events in batches(stream, settings.batch_size, settings.batch_within_seconds,
                                lean=settings.faust_lean_take):
        records = [to_record(ev) for ev in events]
        await until_done(f"a batch of {len(records)} events", lambda: runtime.ingest.handle(records))


@app.timer(interval=1.0)
async def push_rate_limited() -> None:
    """Users whose change was held back by the rate limit get their list once it allows."""
    try:
        await runtime.pusher.push_due()
        await runtime.drift.publish(runtime.publisher)
        await runtime.publisher.flush()
    except Exception:
        log.exception("periodic push failed; will retry")


@app.timer(interval=5.0)
async def resend_outbox() -> None:
    """Item updates a crash or a broker outage left in the outbox go to their owners again."""
    if not runtime.items_ready.is_set():
        return
    try:
        await runtime.bus.sweep(time.time() - settings.outbox_resend_seconds)
        rec, items = await runtime.state.coverage()
        METRICS.prequential_items_recommended.set(rec)
        METRICS.items_seen.set(items)
    except Exception:
        log.exception("resending the outbox failed; will retry")


_lag_labels: set[tuple[str, str]] = set()


@app.timer(interval=5.0)
async def export_consumer_lag() -> None:
    """streamrec_consumer_lag_messages for every partition this worker owns (others are removed)."""
    try:
        consumer = app.consumer
        assigned = set(consumer.assignment())
        if not assigned:
            return
        ends = await consumer.highwaters(*assigned)
        # Faust keeps the last committed offset per partition; no public accessor exists.
        committed = getattr(consumer, "_committed_offset", {})
        now = set()
        for tp in assigned:
            done = committed.get(tp)
            lag = max(0, int(ends.get(tp) or 0) - (int(done) + 1 if done is not None else 0))
            labels = (tp.topic, str(tp.partition))
            METRICS.consumer_lag_messages.labels(*labels).set(lag)
            now.add(labels)
        for labels in _lag_labels - now:  # partitions that moved to another worker
            METRICS.consumer_lag_messages.remove(*labels)
        _lag_labels.clear()
        _lag_labels.update(now)
    except Exception:
        log.exception("exporting consumer lag failed; will retry")


@app.on_before_shutdown.connect
async def deliver_queued(app, **kwargs) -> None:
    """Hand Kafka what the publisher still holds before the worker stops (a batch whose
    messages were not delivered is not acknowledged, so it is read again anyway)."""
    if "publisher" in runtime.__dict__:
        runtime.publisher.close()
