"""Served lists' attribution records, in both experiment states (memory and a real Redis): stored
in one call, read back by rec_id, kept for the window and then gone."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stream.experiments.state import MemoryExperiments, RedisExperiments
from stream.state.keys import Keys
from tests.helpers import Clock, redis_of

pytestmark = pytest.mark.integration

RECORDS = {f"rec-{n}": f'{{"n": {n}, "bytes": "\\u00e9"}}'.encode() for n in range(300)}


async def _unused_tokens():
    raise AssertionError("served lists need no tokens")


@pytest.mark.parametrize("kind", ["memory", "redis", "redis-cluster"])
def test_served_lists_are_kept_for_the_window_then_gone(kind, isolated, request):
    where = redis_of(kind, request)

    async def run():
        clock = Clock(1000.0)
        if kind == "memory":
            state = MemoryExperiments(clock=clock)
        else:
            client = where.redis_client(asyncio=True)
            state = RedisExperiments(client, Keys(f"{where.redis_prefix}:{uuid.uuid4().hex[:6]}"), _unused_tokens)
        await state.save_lists(RECORDS, ttl=60)
        names = ["rec-0", "rec-299", "never-served", "rec-150"]
        lists, members = await state.load(names, [])
        assert lists == [RECORDS["rec-0"], RECORDS["rec-299"], None, RECORDS["rec-150"]] and members == []
        if kind == "memory":
            clock.now += 61.0
        else:  # every record expires with the window
            ttls = {await client.ttl(state.keys.served_list(r)) for r in RECORDS}
            assert ttls and all(0 < t <= 60 for t in ttls), ttls
            await state.save_lists({"short": b"x"}, ttl=1)
            assert (await state.load(["short"], []))[0] == [b"x"]
            await asyncio.sleep(1.2)
            names = ["short"]
        assert (await state.load(names, []))[0] == [None] * len(names)
        if kind != "memory":
            await client.aclose()

    asyncio.run(run())
