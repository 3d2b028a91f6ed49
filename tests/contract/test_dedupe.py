"""What was applied before, in both states (memory and a real Redis): a redelivery is caught by its
partition's last applied offset whatever its age, a producer's resend by its event id within the
dedupe window, and a commit computed from offsets that moved meanwhile is refused."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stream.contract import validate_event
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.items import DirectBus, ItemOwner
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.state.base import Commit, Conflict
from stream.state.keys import Keys
from stream.state.memory import MemoryState
from stream.state.redis import RedisState
from tests.helpers import Clock, redis_of

pytestmark = pytest.mark.integration

CONFIG = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4}), rerank=None, behaviour=None, explore_share=0.0)


def _click(event_id: str, user: str, item: str, ts: float):
    return validate_event("click", {"event_id": event_id, "user_id": user, "item_id": item, "ts": ts, "schema": "v1"})


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def make_state(request, isolated):
    """Makes the state inside the test's event loop (a Redis client belongs to one loop)."""
    where = redis_of(request.param, request)

    def make(clock):
        if request.param == "memory":
            return MemoryState()
        return RedisState(where.redis_client(asyncio=True),
                          Keys(f"{where.redis_prefix}:{uuid.uuid4().hex[:6]}"), n_factors=4,
                          dedupe_ttl_seconds=10, clock=clock)
    return make


def _engine(state) -> Engine:
    table = ItemTable(CONFIG.hybrid)
    return Engine(CONFIG, state, table, DirectBus(ItemOwner(table, state, clock=lambda: 1.0)), clock=lambda: 1.0)


def test_a_redelivery_is_caught_by_its_offset_a_resend_by_its_id(make_state):
    clock = Clock()

    async def run():
        store = make_state(clock)
        engine = _engine(store)
        first = [_click("a1", "u", "x", 1.0), _click("a2", "v", "y", 2.0)]
        done = await engine.step(first, [("clicks", 0, 10), ("clicks", 1, 4)])
        assert done.fresh == [True, True]
        # the same records again (a redelivery after a crash): their ids and their offsets say so
        again = await engine.step(first, [("clicks", 0, 10), ("clicks", 1, 4)])
        assert again.fresh == [False, False]
        # a producer's resend of a1 lands at a new offset: caught by its id, within the window
        resend = await engine.step([_click("a1", "u", "x", 1.0)], [("clicks", 0, 11)])
        assert resend.fresh == [False]
        with pytest.raises(Conflict):  # a commit that would claim it again (another writer raced us) is refused
            await store.commit(Commit(event_ids=["a1"]))
        clock.now += 3600.0  # long after: the ids are forgotten (in Redis), the offsets are not
        late = await engine.step([_click("late-redelivery", "u", "z", 3.0), _click("a3", "u", "w", 4.0)],
                                 [("clicks", 0, 11), ("clicks", 0, 12)])
        assert late.fresh == [False, True]
        users = await store.users(["u", "v"])
        assert users["u"].events == 2 and users["v"].events == 1
        # a commit computed from offsets that moved meanwhile (another worker applied more)
        stale = Commit(event_ids=["b1"], marks={("clicks", 0): (10, 13)})
        with pytest.raises(Conflict):
            await store.commit(stale)
        fresh_ids = Commit(event_ids=["b1"], marks={("clicks", 0): (12, 13)})
        await store.commit(fresh_ids)
        loaded = await store.load(["b1"], [], [], False, [("clicks", 0), ("clicks", 1), ("skips", 0)])
        assert loaded.claimed == [True]
        assert loaded.marks == {("clicks", 0): 13, ("clicks", 1): 4, ("skips", 0): None}
        await store.close()

    asyncio.run(run())


def test_an_event_id_is_remembered_for_the_whole_dedupe_window(make_state):
    """Guards a review finding: with two half-window buckets read, an id committed late in one
    bucket was forgotten after a little more than half the window."""
    clock = Clock(1004.9)  # late in its half-window (the Redis state's window: 10 s, halves of 5 s)

    async def run():
        store = make_state(clock)
        engine = _engine(store)
        first = await engine.step([_click("w1", "u", "x", 1.0)], [("clicks", 0, 1)])
        assert first.fresh == [True]
        clock.now = 1014.0  # 9.1 s later, two half-windows on: within the window
        resend = await engine.step([_click("w1", "u", "x", 1.0)], [("clicks", 0, 2)])
        assert resend.fresh == [False]
        await store.close()

    asyncio.run(run())
