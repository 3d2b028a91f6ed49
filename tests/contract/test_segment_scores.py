"""Segment popularity read for ranking (``RedisState.segment_scores``) against a real Redis: the
scores of the members asked for, in their order, 0 for an item the segment has no score for,
whatever characters the ids hold."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest

from stream.state.keys import Keys
from stream.state.redis import RedisState

pytestmark = pytest.mark.integration

SCORES = {"plain": 3.5, "café": 0.25, "😀 emoji": 1e-5, "quote\"and\\slash": 42.0}


def test_segment_scores_read_every_member_asked_for_in_order(isolated):
    async def run():
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(isolated.redis_url)
        keys = Keys(f"{isolated.redis_prefix}:{uuid.uuid4().hex[:6]}")
        state = RedisState(client, keys, n_factors=4)
        await client.zadd(keys.pop("segment:é"), SCORES)
        await client.zadd(keys.pop("other"), {"plain": 7.0})
        asked = {"segment:é": ["😀 emoji", "absent", "café", "quote\"and\\slash", "plain"],
                 "other": ["café", "plain"], "empty": ["plain"]}
        got = await state.segment_scores(asked)
        await client.aclose()
        return got

    got = asyncio.run(run())
    assert set(got) == {"segment:é", "other", "empty"}
    np.testing.assert_array_equal(got["segment:é"], [1e-5, 0.0, 0.25, 42.0, 3.5])
    np.testing.assert_array_equal(got["other"], [0.0, 7.0])
    np.testing.assert_array_equal(got["empty"], [0.0])
    assert all(a.dtype == np.float64 for a in got.values())
