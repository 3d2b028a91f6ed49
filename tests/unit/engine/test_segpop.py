"""Segment popularity kept by a worker (stream.engine.segpop) when another worker writes too: its
increments show once the kept scores are older than the setting, its rescale at once, and a
commit whose outcome is not known drops what was kept."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from stream.engine.segpop import SegmentPopularity
from stream.state.base import Commit, PopularityChange
from stream.state.memory import MemoryState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _commit(state: MemoryState, seg: str, change: PopularityChange) -> None:
    asyncio.run(state.commit(Commit(popularity={seg: change})))


def _table():
    from stream.models.hybrid import HybridParams
    from stream.models.items import ItemTable

    table = ItemTable(HybridParams(mf={"n_factors": 4}))
    table.rows(["a", "b", "c"])
    return table


def _read(kept: SegmentPopularity, seg: str, items: list[str]) -> list[float]:
    return asyncio.run(kept.scores_at({seg: kept.table.known_rows(items)}))[seg].tolist()


@pytest.fixture
def world():
    state = MemoryState([])
    _commit(state, "s", PopularityChange(None, 100.0, None, {"a": 1.0, "b": 2.0}))
    clock = Clock()
    kept = SegmentPopularity(state, 1.0, _table(), clock=clock)
    kept.sync({"s": 100.0})
    return state, kept, clock


def test_own_commits_are_followed_without_reading_again(world):
    state, kept, _ = world
    assert _read(kept, "s", ["a", "b", "c"]) == [1.0, 2.0, 0.0]
    change = PopularityChange(100.0, 160.0, 0.5, {"c": 4.0, "a": 0.25})  # a rescale, then increments
    _commit(state, "s", change)
    kept.committed({"s": change})
    read_before = kept.read
    assert _read(kept, "s", ["a", "b", "c"]) == [0.75, 1.0, 4.0]
    assert kept.read == read_before  # all kept
    assert asyncio.run(state.segment_scores({"s": ["a", "b", "c"]}))["s"].tolist() == [0.75, 1.0, 4.0]


def test_another_writers_increments_show_after_the_setting(world):
    state, kept, clock = world
    assert _read(kept, "s", ["a"]) == [1.0]
    _commit(state, "s", PopularityChange(100.0, 100.0, None, {"a": 5.0}))  # another worker
    clock.now = 0.9
    assert _read(kept, "s", ["a"]) == [1.0]  # kept: at most `seconds` old
    clock.now = 1.1
    assert _read(kept, "s", ["a"]) == [6.0]


def test_another_writers_rescale_drops_the_segment_at_once(world):
    state, kept, _ = world
    assert _read(kept, "s", ["a", "b"]) == [1.0, 2.0]
    _commit(state, "s", PopularityChange(100.0, 200.0, 0.125, {}))  # another worker moved the scale
    kept.sync({"s": 200.0})  # as the next load has it
    assert _read(kept, "s", ["a", "b"]) == [0.125, 0.25]


def test_an_own_commit_under_another_scale_drops_the_segment(world):
    state, kept, _ = world
    assert _read(kept, "s", ["a"]) == [1.0]
    _commit(state, "s", PopularityChange(100.0, 200.0, 0.5, {}))  # another worker, not yet seen
    change = PopularityChange(200.0, 200.0, None, {"a": 1.0})  # this one, computed from the new scale
    _commit(state, "s", change)
    kept.committed({"s": change})
    assert _read(kept, "s", ["a"]) == [1.5]


def test_a_commit_of_unknown_outcome_drops_what_is_kept():
    from stream.engine.engine import Engine
    from stream.engine.config import EngineConfig
    from stream.engine.items import DirectBus, ItemOwner
    from stream.models.items import ItemTable
    from stream.contract import validate_event

    config = EngineConfig()
    state = MemoryState(config.behaviour.features)
    table = ItemTable(config.hybrid)
    engine = Engine(config, state, table, DirectBus(ItemOwner(table, state)), segment_popularity_seconds=60.0)
    engine.popularity._kept["s"] = object()  # something kept

    async def lost(commit):
        raise ConnectionError("the connection dropped after the script was sent")

    state.commit = lost
    event = validate_event("click", {"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1.0,
                                     "schema": "v1"})
    with pytest.raises(ConnectionError):
        asyncio.run(engine.step([event]))
    assert engine.popularity._kept == {}


def test_zero_seconds_reads_every_time(world):
    state, _, clock = world
    kept = SegmentPopularity(state, 0.0, _table(), clock=clock)
    assert _read(kept, "s", ["a"]) == [1.0]
    _commit(state, "s", PopularityChange(100.0, 100.0, None, {"a": 5.0}))
    assert _read(kept, "s", ["a"]) == [6.0]
    assert np.isclose(kept.seconds, 0.0) and kept.asked == 0
    with pytest.raises(ValueError, match="seconds"):
        SegmentPopularity(state, -1.0, _table())


def test_a_read_overlapping_an_own_commit_is_given_not_kept(world):
    """A timer's push reads while a batch commits: its answer may already hold the commit's
    increments, which committed() then adds to what is kept; so it is not kept."""
    state, _, clock = world

    class Slow:  # the read reaches Redis after the commit, and returns before committed()
        def __init__(self):
            self.go = asyncio.Event()

        async def segment_scores(self, wanted):
            await self.go.wait()
            return await state.segment_scores(wanted)

    slow = Slow()
    kept = SegmentPopularity(slow, 60.0, _table(), clock=clock)
    kept.sync({"s": 100.0})
    change = PopularityChange(100.0, 100.0, None, {"a": 5.0})

    async def run():
        rows = kept.table.known_rows(["a"])
        read = asyncio.ensure_future(kept.scores_at({"s": rows}))
        await asyncio.sleep(0)
        with kept.writing():
            await state.commit(Commit(popularity={"s": change}))
            slow.go.set()
            first = (await read)["s"].tolist()
        kept.committed({"s": change})
        return first, (await kept.scores_at({"s": rows}))["s"].tolist()

    first, again = asyncio.run(run())
    assert first == [6.0] and again == [6.0]  # not 11.0: the increment counted once


def test_rows_added_to_the_table_after_the_first_read_are_read(world):
    state, kept, _ = world
    assert _read(kept, "s", ["a"]) == [1.0]
    _commit(state, "s", PopularityChange(100.0, 100.0, None, {"d": 3.0}))  # another worker, a new item
    kept.table.rows(["d"])
    assert _read(kept, "s", ["d", "a"]) == [3.0, 1.0]
