"""Embedding store round trip through a real Redis: the worker's writer, another service's reader."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from consumers.embeddings import EmbeddingReader
from stream.store.embeddings import BackpressureError, EmbeddingWriter
from stream.store.keys import Keys

pytestmark = pytest.mark.integration


def test_vectors_round_trip_with_version_and_time(isolated):
    import redis.asyncio as aioredis

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 8)).astype(np.float32)

    async def write():
        client = aioredis.Redis.from_url(isolated.redis_url)
        writer = EmbeddingWriter(client, Keys(isolated.redis_prefix), max_pending=4)
        writer.add("item", ["a", "b", "c"], vectors, version="7", updated_at=123.5, biases=np.array([0.1, 0.2, 0.3]))
        with pytest.raises(BackpressureError):
            writer.add("user", ["x", "y"], vectors[:2], version="7", updated_at=1.0)
        written = await writer.flush()
        await client.aclose()
        return written

    assert asyncio.run(write()) == 3
    reader = EmbeddingReader.from_settings(isolated)
    ids, matrix = reader.items(["c", "missing", "a"])
    assert ids == ["c", "a"]
    np.testing.assert_array_equal(matrix, vectors[[2, 0]])
    item = reader.item("b")
    assert item.version == "7" and item.updated_at == 123.5 and abs(item.bias - 0.2) < 1e-12
    assert reader.user("x") is None
