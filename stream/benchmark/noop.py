"""A Faust app whose agent drains the interaction topics and does nothing else: the reference
rate for the pipeline benchmark. Same topics, same batching, same Faust settings as the worker;
it only counts, with one Redis INCRBY per batch so the driver can watch."""

from __future__ import annotations

import time

import faust

from stream.config import get_settings

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
        pipe = _redis.pipeline(transaction=False)
        pipe.incrby(key, len(events))
        pipe.set(f"{key}:last", repr(time.time()))
        pipe.setnx(f"{key}:first", repr(time.time()))
        await pipe.execute()
