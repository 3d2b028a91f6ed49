"""The in-memory state (stream/state/memory.py): a commit is all or nothing, checked against what
it was computed from; reads hand out copies; the engine recomputes a batch after a conflict."""

from __future__ import annotations

import asyncio
import copy

import numpy as np
import pytest

from stream.contract import validate_event
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.items import DirectBus, ItemOwner
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.state.base import Commit, Conflict, OutboxEntry, PopularityChange, UserRecord
from stream.state.memory import MemoryState
from stream.state.seen import Seen


def _snapshot(state: MemoryState):
    return copy.deepcopy((state.claimed, state.dump(), state.popularity, state.popularity_refs, state.layers,
                          state.guards, state.stats, sorted(state.outbox), state.seeded))


def _commit(event_ids, **changes) -> Commit:
    c = Commit(event_ids=list(event_ids), users={"u": UserRecord("u", history=["a"], seen=Seen.of({"a": 1.0}), events=1)},
               popularity={"all": PopularityChange(None, 1.0, None, {"a": 1.0})}, layers={"_shared": {"global": 0.5}},
               stats={"events_total:click": len(event_ids)},
               outbox=[OutboxEntry("x/0", 0, b"payload")])
    for name, value in changes.items():
        setattr(c, name, value)
    return c


def test_a_commit_writes_everything_it_holds():
    state = MemoryState()
    asyncio.run(state.commit(_commit(["e1"])))
    assert state.claimed == {"e1"} and state.user_records["u"].history == ["a"]
    assert state.popularity == {"all": {"a": 1.0}} and state.popularity_refs == {"all": 1.0}
    assert state.layers == {"_shared": {"global": 0.5}} and state.stats == {"events_total:click": 1}
    assert list(state.outbox) == ["x/0"]


def test_a_commit_raises_conflict_when_an_event_id_was_claimed_meanwhile_and_writes_nothing():
    state = MemoryState()
    asyncio.run(state.commit(_commit(["e1"], popularity={}, outbox=[])))  # another writer claimed e1
    before = _snapshot(state)
    with pytest.raises(Conflict, match="1 event ids were claimed meanwhile, e.g. 'e1'"):
        asyncio.run(state.commit(_commit(["e2", "e1", "e3"])))
    assert _snapshot(state) == before  # not e2, not e3, nothing else either


@pytest.mark.parametrize("stale, reason", [
    ({"guards": {"kids": (0, {"trials": "4"})}}, "the guard of segment 'kids' changed meanwhile"),  # stored: 3
    ({"popularity": {"all": PopularityChange(None, 2.0, None, {"b": 1.0})}}, "popularity scale of segment 'all'"),
    ({"behaviour": object(), "seeded_before": True}, "clusterer was seeded meanwhile"),  # it is not
], ids=["guard", "popularity", "clusterer"])
def test_a_commit_computed_from_shared_state_that_moved_meanwhile_conflicts(stale, reason):
    state = MemoryState()
    asyncio.run(state.commit(_commit(["e0"], guards={"kids": (0, {"trials": "3", "serving": "segment"})})))
    before = _snapshot(state)
    # as loaded now, but for the one stale part
    current = {"popularity": {"all": PopularityChange(1.0, 1.0, None, {"a": 1.0})},
               "guards": {"kids": (3, {"trials": "4"})}}
    with pytest.raises(Conflict, match=reason):
        asyncio.run(state.commit(_commit(["e9"], **{**current, **stale})))
    assert _snapshot(state) == before
    asyncio.run(state.commit(_commit(["e9"], **current)))  # the same commit, computed from the state as it is
    assert "e9" in state.claimed and state.guards["kids"]["trials"] == "4"


def test_reads_hand_out_copies():
    state = MemoryState()
    asyncio.run(state.commit(_commit(["e1"])))
    loaded = asyncio.run(state.load(["e1", "e2"], ["u", "nobody"], ["all"], clusterer=True))
    assert loaded.claimed == [True, False] and loaded.users["nobody"] == UserRecord("nobody")
    loaded.users["u"].history.append("b")
    loaded.users["u"].seen.add("b", 2.0)
    loaded.shared.layers["_shared"]["global"] = 99.0
    loaded.clusterer.sums += 1.0
    again = asyncio.run(state.load([], ["u"], ["all"], clusterer=True))
    assert again.users["u"].history == ["a"] and again.users["u"].seen == Seen.of({"a": 1.0})
    assert again.shared.layers["_shared"] == {"global": 0.5}
    np.testing.assert_array_equal(again.clusterer.sums, np.zeros(len(state.features)))


class RacingState(MemoryState):
    """Another worker claims one of the batch's events just before this commit, once."""

    def __init__(self, steal: str):
        super().__init__()
        self.steal, self.commits = steal, 0

    async def commit(self, commit):
        self.commits += 1
        if self.commits == 1:
            self.claimed.add(self.steal)
        await super().commit(commit)


def test_the_engine_computes_a_conflicting_batch_again_from_a_fresh_load():
    config = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4}), rerank=None, behaviour=None, explore_share=0.0)
    state = RacingState(steal="e2")
    table = ItemTable(config.hybrid)
    engine = Engine(config, state, table, DirectBus(ItemOwner(table, state, keep_rows=False)), clock=lambda: 0.0)
    events = [validate_event("click", {"event_id": f"e{n}", "user_id": "u", "item_id": f"i{n}", "ts": float(n),
                                       "schema": "v1"}) for n in range(1, 4)]
    result = asyncio.run(engine.step(events))
    assert result.attempts == 2 and state.commits == 2
    assert result.fresh == [True, False, True]  # the second attempt saw e2 as applied elsewhere
    assert state.user_records["u"].events == 2 and state.user_records["u"].history == ["i1", "i3"]
