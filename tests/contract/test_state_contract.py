"""One event sequence through the engine twice, over both states: in memory and in a real Redis.

The same 5,000 simulator events, in the same batches of mixed sizes, go through an
:class:`~stream.engine.engine.Engine` over :class:`~stream.state.memory.MemoryState` and one over
:class:`~stream.state.redis.RedisState` (the worker's). Every trial's served list, every user's
final top-10 and every learned user row must be identical, and every item row equal to float32
precision: the state is a plug, the models are written once.

The Redis engine runs twice: reading segment popularity from Redis every time, and keeping what
it read (:mod:`stream.engine.segpop`) with a half-life short enough for the segments' popularity
to be rescaled on the way; one writer's kept scores are the stored ones, so nothing may differ,
and at the end every kept score must equal Redis' to the bit. It keeps them a third time on a
local Redis Cluster of three primaries (stream/stack/redis_cluster.py), its prefix a hash tag: the
cluster client sends every call to the node of that slot (:attr:`~stream.state.keys.Keys.slot`).

Item updates are applied synchronously here, by an owner in this process right after each batch
(:class:`~stream.engine.items.DirectBus`), not through Kafka: in a worker they reach their owner a
moment later, which changes what later batches see (measured by ``evaluate --through-worker``).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from producers.simulator import World, WorldConfig
from stream.contract import validate_event
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.items import DirectBus, ItemOwner
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.state.keys import Keys
from stream.state.memory import MemoryState
from stream.state.redis import RedisState

pytestmark = pytest.mark.integration

CONFIG = EngineConfig(hybrid=HybridParams(mf={"n_factors": 16}), explore_share=0.1, segment_half_life=600.0,
                      segmenter={"attributes": ["segment"], "max_segments": 32})


def _world():
    world = World(WorldConfig(n_users=200, n_items=150, seed=3))
    events = [validate_event(t, p) for t, p in world.generate(5000, start_ts=1.7e9, step_seconds=0.5)]
    return events, list(world.profiles())


#: popularity rescaled every 721 s of event time: three times in the 2,500 s of the stream
RESCALING = CONFIG.with_changes(segment_half_life=10.0)


def _engine(state, config: EngineConfig = CONFIG, kept_seconds: float = 0.0) -> Engine:
    table = ItemTable(config.hybrid)
    return Engine(config, state, table, DirectBus(ItemOwner(table, state, clock=lambda: 1.0)), clock=lambda: 1.0,
                  segment_popularity_seconds=kept_seconds)


async def _run(settings, config: EngineConfig = CONFIG, kept_seconds: float = 0.0):
    events, profiles = _world()
    client = settings.redis_client(asyncio=True)
    prefix = settings.redis_prefix
    memory = _engine(MemoryState(config.behaviour.features), config)
    redis = _engine(RedisState(client, Keys(prefix), n_factors=16, behaviour_features=config.behaviour.features),
                    config, kept_seconds)
    for p in profiles[:120]:  # 120 users have a profile segment; the others get behaviour segments
        for engine in (memory, redis):
            await engine.apply_profile(p["user_id"], p["attributes"], 0.0)
    rng = np.random.default_rng(0)
    pos, differing, trials, rescales = 0, [], 0, 0
    while pos < len(events):
        batch = events[pos:pos + int(rng.choice([1, 3, 17, 64, 200]))]
        pos += len(batch)
        a, b = await memory.step(batch), await redis.step(batch)
        trials += len(a.trials)
        rescales += sum(c.factor is not None for c in b.commit.popularity.values())
        if [(t.position, t.served) for t in a.trials] != [(t.position, t.served) for t in b.trials]:
            differing.append(pos)
        assert a.fresh == b.fresh
    users = sorted({e.user_id for e in events})
    lists_a, lists_b = await memory.recommend(users), await redis.recommend(users)
    coverage = await memory.state.coverage(), await redis.state.coverage()  # exact, and HyperLogLog estimates
    rows_a, rows_b = await memory.state.users(users), await redis.state.users(users)
    compared = mismatched = 0  # every score kept, against Redis now: to the bit
    for seg, kept in redis.popularity._kept.items():
        rows = np.flatnonzero(~np.isnan(kept.values))
        stored = (await redis.state.segment_scores({seg: [redis.table.item_ids[r] for r in rows]}))[seg]
        compared += len(rows)
        mismatched += int((stored != kept.values[rows]).sum())
    await client.aclose()
    return (memory, redis, differing, trials, users, lists_a, lists_b, rows_a, rows_b, rescales, (compared, mismatched),
            coverage)


@pytest.mark.parametrize("where, config, kept_seconds", [("isolated", CONFIG, 0.0), ("isolated", RESCALING, 3600.0),
                                                        ("isolated_cluster", RESCALING, 3600.0)],
                         ids=["read-every-time", "kept-and-rescaled", "on-a-redis-cluster"])
def test_memory_and_redis_states_give_identical_lists_and_rows(request, where, config, kept_seconds):
    memory, redis, differing, trials, users, lists_a, lists_b, rows_a, rows_b, rescales, scores, coverage = asyncio.run(
        _run(request.getfixturevalue(where), config, kept_seconds))
    assert trials > 500, f"only {trials} trials: the stream is too small to say much"
    kept = redis.popularity
    if kept_seconds:  # the kept scores were used, and followed rescales
        assert kept.asked > 10_000 and kept.read < kept.asked / 2, (kept.asked, kept.read)
        assert rescales >= 3, rescales
        compared, mismatched = scores
        assert compared > 100 and mismatched == 0, scores
    else:
        assert kept.asked == 0
    (served, items), (served_estimate, items_estimate) = coverage  # distinct items served in trials, and seen
    assert served > 20 and items > 100, coverage
    assert abs(served_estimate - served) <= 0.02 * served and abs(items_estimate - items) <= 0.02 * items, coverage
    assert not differing, f"trial lists differ in the batches ending at {differing[:5]}"
    different = [u for u in users if lists_a[u][1].ids != lists_b[u][1].ids]
    assert not different, f"{len(different)} users' final lists differ, e.g. {different[:3]}"
    assert sum(r.row is not None for r in rows_a.values()) > 100
    for u in users:
        a, b = rows_a[u], rows_b[u]
        assert (a.row is None) == (b.row is None), u
        if a.row is not None:
            np.testing.assert_array_equal(a.row.vector, b.row.vector)
            assert (a.row.bias, a.row.acc, a.row.acc_b, a.row.n) == (b.row.bias, b.row.acc, b.row.acc_b, b.row.n)
        assert a.history == b.history and a.seen == b.seen and a.events == b.events
        assert (a.behaviour is None) == (b.behaviour is None)
        if a.behaviour is not None:
            assert a.behaviour.segment == b.behaviour.segment
    ta, tb = memory.table, redis.table
    assert ta.item_ids == tb.item_ids
    n = ta.n_items
    np.testing.assert_array_equal(ta.mf.model.item_factors, tb.mf.model.item_factors)
    np.testing.assert_array_equal(ta.cooc.n[:n], tb.cooc.n[:n])
    for r in range(n):
        for x, y in zip(ta.cooc.row(r), tb.cooc.row(r)):
            np.testing.assert_array_equal(x, y)
