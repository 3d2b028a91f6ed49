"""A Faust app whose agent drains the interaction topics and does nothing else: the reference
rate for the pipeline benchmark. Same topics, same batching, and the worker's own Faust settings
(built by the same :func:`stream.faustapp.build_app`, run by the same command line); it only
counts, with one Redis round trip per batch so the driver can watch: the events (in all and per
worker, STREAMREC_WORKER_ID), how old each was when its batch was handled (Kafka create time
to now, in the worker's freshness buckets), the reference for the worker's freshness, and the CPU
seconds of its loop thread and its process, with its count of events, at its first and its latest
batch (how busy it was, and its loop's CPU an event: stream/benchmark/busy.py)."""


from __future__ import annotations

import time
from bisect import bisect_left

from stream.config import get_settings
from stream.contract import INTERACTION_TYPES, TOPIC_OF
from stream.faustapp import build_app
from stream.faustapp.take import batches
from stream.gctune import tune_gc
from stream.metrics import FRESHNESS_BUCKETS

settings = get_settings()

app = build_app(f"{settings.app_id}-noop", settings)
topic = app.topic(*(settings.topic(TOPIC_OF[t]) for t in INTERACTION_TYPES),
                  partitions=settings.partitions)
_redis = None


def counter_key(prefix: str) -> str:
    """The Redis key the no-op agents count their events under (``:by-worker`` beside it: per worker)."""
    return f"{prefix}:bench:noop"


@app.task
async def tune_collector() -> None:  # as the worker does (stream/agents/process.py)
    tune_gc(settings.gc_threshold)


@app.agent(topic, concurrency=1)
async def drain(stream):
    global _redis
    _redis = _redis or settings.redis_client(asyncio=True)
    key = counter_key(settings.redis_prefix)
    handled = 0  # events this agent has handled (its CPU notes carry it)
    async for events in batches(stream, settings.batch_size, settings.batch_within_seconds,
                                lean=settings.faust_lean_take):
        now = time.time()
        ages: dict[int, int] = {}  # bucket -> events (bucket len(FRESHNESS_BUCKETS): beyond the last bound)
        for ev in events:
            ts = ev.message.timestamp
            if ts:
                j = bisect_left(FRESHNESS_BUCKETS, now - (ts / 1000.0 if ts > 1e11 else ts))
                ages[j] = ages.get(j, 0) + 1
        pipe = _redis.pipeline(transaction=False)
        pipe.incrby(key, len(events))
        pipe.hincrby(f"{key}:by-worker", settings.worker_id, len(events))
        for j, n in ages.items():
            pipe.hincrby(f"{key}:age", str(j), n)
        pipe.set(f"{key}:last", repr(time.time()))
        pipe.setnx(f"{key}:first", repr(time.time()))
        handled += len(events)
        # the agent runs in the loop thread
        cpu = f"{time.monotonic()!r} {time.thread_time()!r} {time.process_time()!r} {handled}"
        pipe.hsetnx(f"{key}:cpu-first", settings.worker_id, cpu)
        pipe.hset(f"{key}:cpu-last", settings.worker_id, cpu)
        await pipe.execute()
