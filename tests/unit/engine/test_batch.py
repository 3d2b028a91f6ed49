"""The in-order walk over a micro-batch (stream/engine/batch.py), and which events are fresh."""

from __future__ import annotations

import asyncio

from stream.contract import validate_event
from stream.engine.batch import explores, walk
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.items import DirectBus, ItemOwner
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.state.base import UserRecord
from stream.state.memory import MemoryState
from stream.state.seen import Seen

CONFIG = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4}), rerank=None, behaviour=None, explore_share=0.0)


def ev(kind, n, user, item, **extra):
    return validate_event(kind, {"event_id": f"e{n}", "user_id": user, "item_id": item, "ts": float(n),
                                 "schema": "v1", **extra})


def _walk(events, users, fresh=None, config=CONFIG):
    fresh = [True] * len(events) if fresh is None else fresh
    return walk(events, fresh, users, {uid: "all" for uid in users}, config)


def test_a_users_second_click_in_a_batch_sees_the_first_as_history_and_seen():
    before = UserRecord("u", history=["x"], seen=Seen.of({"x": 0.0}), events=1)
    batch = _walk([ev("click", 1, "u", "a"), ev("click", 2, "u", "b")], {"u": before})
    first, second = batch.trials
    assert (first.position, first.history, first.seen) == (0, ["x"], Seen.of({"x": 0.0}))
    assert (second.position, second.history, second.seen) == (1, ["x", "a"], Seen.of({"x": 0.0, "a": 1.0}))
    after = batch.after["u"]
    assert (after.events, after.history, after.seen) == (3, ["x", "a", "b"], Seen.of({"x": 0.0, "a": 1.0, "b": 2.0}))
    assert (before.events, before.history, before.seen) == (1, ["x"], Seen.of({"x": 0.0}))  # the loaded record: untouched
    assert batch.pairs == [("a", "x", 1.0), ("b", "x", 1.0), ("b", "a", 1.0)]
    assert batch.new_positives == ["a", "b"]


def test_a_new_users_first_click_is_no_trial_their_second_is():
    batch = _walk([ev("click", 1, "n", "a"), ev("click", 2, "n", "b"), ev("click", 3, "n", "a")],
                  {"n": UserRecord("n")})
    assert [(m.position, m.event.item_id) for m in batch.trials] == [(1, "b")]  # the re-click of a: seen
    assert batch.new_positives == ["a", "b"]  # a re-click forms no pairs


def test_an_impression_counts_as_an_earlier_event_but_marks_nothing_seen():
    batch = _walk([ev("impression", 1, "v", "a", items=["a"], rec_id="r"), ev("click", 2, "v", "a"),
                   ev("skip", 3, "v", "b", after_seconds=2.0), ev("click", 4, "v", "b")], {"v": UserRecord("v")})
    assert [(m.position, m.event.item_id) for m in batch.trials] == [(1, "a")]  # b was skipped: seen
    assert batch.after["v"].history == ["a", "b"]  # the click on b is a positive, though not a trial


def test_duplicates_in_a_batch_are_not_fresh_and_change_nothing():
    events = [ev("click", 1, "u", "a"), ev("click", 1, "u", "a"), ev("click", 2, "u", "b")]
    batch = _walk(events, {"u": UserRecord("u")}, fresh=[True, False, True])
    assert batch.after["u"].events == 2 and [m.position for m in batch.trials] == [2]
    assert batch.fresh_events() == [events[0], events[2]]

    state = MemoryState()
    table = ItemTable(CONFIG.hybrid)
    engine = Engine(CONFIG, state, table, DirectBus(ItemOwner(table, state, keep_rows=False)), clock=lambda: 0.0)
    result = asyncio.run(engine.step(events))
    assert result.fresh == [True, False, True] and (result.applied, result.duplicates) == (2, 1)
    assert state.user_records["u"].events == 2
    again = asyncio.run(engine.step(events))  # redelivered: every id was claimed by the first commit
    assert again.fresh == [False, False, False] and again.trials == []
    assert state.user_records["u"].events == 2


def test_only_trials_are_kept_as_moments():
    users = {"u": UserRecord("u", events=1, history=["x"], seen=Seen.of({"x": 0.0}))}
    events = [ev("dwell", 1, "u", "a", seconds=90.0), ev("click", 2, "u", "b"), ev("skip", 3, "u", "c", after_seconds=1.0)]
    batch = _walk(events, users)
    assert [(m.position, m.trial, m.segment) for m in batch.moments] == [(1, True, "all")]
    assert batch.after["u"].history == ["x", "a", "b"]  # the dwell is a positive all the same


def test_a_history_keeps_the_last_positives_the_cooccurrence_needs():
    config = CONFIG.with_changes(hybrid=HybridParams(mf={"n_factors": 4},
                                                     cooccurrence={"decay": 0.7, "history": 3, "window": 2}))
    batch = _walk([ev("click", n, "u", f"i{n}") for n in range(6)], {"u": UserRecord("u")}, config=config)
    assert batch.after["u"].history == ["i3", "i4", "i5"]
    assert [(a, b) for a, b, _ in batch.pairs if a == "i5"] == [("i5", "i3"), ("i5", "i4")]  # the last window only


def test_exploration_is_a_stable_draw_per_user_and_minute():
    assert explores("u1", 0.0, 1.0) and not explores("u1", 0.0, 0.0)
    assert [explores("u1", t, 0.5) for t in (0.0, 30.0, 59.9)] == [explores("u1", 0.0, 0.5)] * 3
    share = sum(explores(f"u{n}", 120.0, 0.25) for n in range(4000)) / 4000
    assert 0.22 < share < 0.28


def test_a_purchase_is_a_strong_positive_that_marks_seen_and_is_no_trial():
    before = UserRecord("p", history=["x"], seen=Seen.of({"x": 0.0}), events=1)
    batch = _walk([ev("purchase", 1, "p", "a", value=9.5, currency="EUR"), ev("click", 2, "p", "a"),
                   ev("click", 3, "p", "b")], {"p": before})
    assert batch.weights == [2.0, 1.0, 1.0]
    assert [(m.position, m.event.item_id) for m in batch.trials] == [(2, "b")]  # a was bought: seen
    after = batch.after["p"]
    assert (after.events, after.history, "a" in after.seen) == (4, ["x", "a", "b"], True)
    assert batch.new_positives == ["a", "b"]
