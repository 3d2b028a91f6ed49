"""A Faust app whose agent drains the interaction topics and does nothing else: the reference
rate for the pipeline benchmark. Same topics, same batching, same Faust settings as the worker;
it only counts, with one Redis round trip per batch so the driver can watch: the events, and
how old each was when its batch was handled (Kafka create time to now, in the worker's
freshness buckets), the reference for the worker's freshness."""


from __future__ import annotations

import time
from bisect import bisect_left

import faust

from stream.config import get_settings
from stream.metrics import FRESHNESS_BUCKETS

settings = get_settings()

app = faust.App(
    f"{settings.app_id}-noop",
    broker=[f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",") if h.strip()],
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.partitions,
    web_host=settings.web_host,
    web_bind=settings.web_host,
    web_port=settings.web_port,
    broker_max_poll_records=500,
    consumer_auto_offset_reset="earliest",
    datadir=str(settings.datadir_path) + "-noop",
)
topic = app.topic(*(settings.topic(t) for t in ("clicks", "dwell", "skips", "impressions")),
                  partitions=settings.partitions)
_redis = None


@app.agent(topic, concurrency=1)
async def drain(stream):
    global _redis
    import redis.asyncio as aioredis

    _redis = _redis or aioredis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    key = f"{settings.redis_prefix}:bench:noop"
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_seconds):
        now = time.time()
        ages: dict[int, int] = {}  # bucket -> events (bucket len(FRESHNESS_BUCKETS): beyond the last bound)
        for ev in events:
            ts = ev.message.timestamp
            if ts:
                j = bisect_left(FRESHNESS_BUCKETS, now - (ts / 1000.0 if ts > 1e11 else ts))
                ages[j] = ages.get(j, 0) + 1
        pipe = _redis.pipeline(transaction=False)
        pipe.incrby(key, len(events))
        for j, n in ages.items():
            pipe.hincrby(f"{key}:age", str(j), n)
        pipe.set(f"{key}:last", repr(time.time()))
        pipe.setnx(f"{key}:first", repr(time.time()))
        await pipe.execute()
