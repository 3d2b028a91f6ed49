"""Behaviour segments (stream/models/segments/behaviour.py): clickers and skippers are told
apart with stable, readable ids; a user who changes habits moves once; a batch's changes,
applied to the stored clusterer (what MemoryState does, and the Redis commit script in
tests/integration/test_behaviour_segments.py), reproduce the learned one."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from stream.contract import make_event, validate_event
from stream.engine.config import EngineConfig
from stream.engine.offline import EngineRanker
from stream.models.hybrid import HybridParams
from stream.models.segments.behaviour import BehaviourModel, BehaviourParams, UserBehaviour
from stream.signals import signal_weight
from stream.state.base import Commit
from stream.state.memory import MemoryState
from tests.helpers import behaviour_events

PARAMS = BehaviourParams(n_clusters=3, halflife=0.05, hysteresis=2, memory=0.2, min_events=2, taste_dims=0,
                         warmup=30, seed=4)


def _steps(events):
    return [(ev.user_id, signal_weight(ev)) for ev in events if signal_weight(ev) != 0]


def _segments(users: dict[str, UserBehaviour]) -> dict[str, str]:
    return {u: rec.segment for u, rec in users.items() if rec.segment}


def _learn(model: BehaviourModel, batches, users=None, clusterer=None):
    """Learn batch after batch (the clusterer steps once per user and batch); the moves."""
    users = {} if users is None else users
    clusterer = model.new_clusterer() if clusterer is None else clusterer
    moved = []
    for batch in batches:
        moved += model.learn(batch, users, clusterer, {}).moved
    return users, clusterer, moved


def _chunks(steps, size):
    return [steps[s:s + size] for s in range(0, len(steps), size)]


def test_clickers_and_skippers_get_different_segments_and_switchers_follow():
    model = BehaviourModel(PARAMS)
    users, clusterer, moved = _learn(model, _chunks(_steps(behaviour_events(1500, seed=1)), 10))
    assigned = _segments(users)
    clickers = {assigned[u] for u in assigned if u.startswith("clicker")}
    skippers = {assigned[u] for u in assigned if u.startswith("skipper")}
    assert len(clickers) == len(skippers) == 1 and clickers != skippers
    switchers = [assigned[u] for u in assigned if u.startswith("switcher")]
    assert switchers.count(next(iter(skippers))) > len(switchers) / 2  # they ended with the skippers
    assert moved  # moves are reported, each from where the user was to where they end up
    last = {}
    for user, before, after in moved:
        assert last.get(user, before) == before and before != after
        last[user] = after
    assert all(assigned[u] == seg for u, seg in last.items())
    labels = model.labels(clusterer)
    assert labels[next(iter(clickers))].endswith("long-dwell/low-skip")
    assert labels[next(iter(skippers))].endswith("high-skip")


def _apply(state: MemoryState, changes) -> None:
    asyncio.run(state.commit(Commit(behaviour=changes, seeded_before=state.seeded)))


def test_changes_applied_to_a_fresh_clusterer_reproduce_the_learned_one():
    events = behaviour_events(1500, seed=1)
    model = BehaviourModel(PARAMS)
    batches = _chunks(_steps(events), 50)
    # in memory: one clusterer learning batch after batch
    mem_users, learned, _ = _learn(model, batches)
    # through the state, as the engine runs it: the stored clusterer loaded, learned on, its changes committed
    state = MemoryState(PARAMS.features)
    users: dict[str, UserBehaviour] = {}
    seeded_in = []
    for n, batch in enumerate(batches):
        clusterer = state.clusterer.copy()
        changes = model.learn(batch, users, clusterer, {})
        if changes.centres:
            seeded_in.append(n)
        _apply(state, changes)
        stored = state.clusterer
        assert (stored.n, stored.events, stored.users) == (clusterer.n, clusterer.events, clusterer.users)
        np.testing.assert_allclose(stored.sums, clusterer.sums, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(stored.sumsq, clusterer.sumsq, rtol=1e-12, atol=1e-9)
        if clusterer.centres is None:
            assert stored.centres is None and stored.warmup == clusterer.warmup
        else:
            np.testing.assert_allclose(stored.centres, clusterer.centres, atol=1e-9)
    assert len(seeded_in) == 1 and seeded_in[0] > 0  # the centres are seeded once, then moved by differences
    np.testing.assert_allclose(state.clusterer.centres, learned.centres, atol=1e-9)
    assert (state.clusterer.n, state.clusterer.events) == (learned.n, learned.events)
    assert _segments(users) == _segments(mem_users)


def _behaviour_stream(rounds, convert=None):
    """Four clickers (long dwell) and four skippers; 'convert' acts like a clicker or a skipper.
    One batch a round."""
    out = []
    for n in range(rounds):
        batch = [(f"clicker{n % 4}", 2.0), (f"skipper{n % 4}", -1.0 if (n // 4) % 5 else 0.5)]
        if n % 4 == 0 and convert == "click":
            batch.append(("convert", 2.0))
        if n % 4 == 0 and convert == "skip":
            batch.append(("convert", -1.0 if (n // 4) % 5 else 0.5))
        out.append(batch)
    return out


def _two(seed, hysteresis=3):
    return BehaviourModel(BehaviourParams(n_clusters=2, halflife=0.05, hysteresis=hysteresis, min_events=2,
                                          taste_dims=0, seed=seed))


# seed 2 left one centre without users once the clusterer stepped once per user and batch
# (everybody in behaviour-0); reported, not a known answer any more
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_behaviour_ids_are_stable_and_readable(seed):
    model = _two(seed)
    users, clusterer, _ = _learn(model, _behaviour_stream(400))
    first = {u: users[u].segment for u in ("clicker0", "clicker1", "skipper0", "skipper1")}
    assert first["clicker0"] == first["clicker1"] != first["skipper0"] == first["skipper1"]
    assert set(first.values()) == {"behaviour-0", "behaviour-1"}
    labels = model.labels(clusterer)
    assert labels[first["clicker0"]].endswith("long-dwell/low-skip")
    assert labels[first["skipper0"]].endswith("short-dwell/high-skip")
    _, _, moved = _learn(model, _behaviour_stream(400), users, clusterer)  # more of the same
    assert {u: users[u].segment for u in first} == first and moved == []


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_user_who_changes_habits_moves_once_and_is_reported(seed):
    model = _two(seed, hysteresis=5)
    users, clusterer, _ = _learn(model, _behaviour_stream(400, convert="click"))
    clickers, skippers = users["clicker0"].segment, users["skipper0"].segment
    assert users["convert"].segment == clickers
    _, _, moved = _learn(model, _behaviour_stream(400, convert="skip"), users, clusterer)
    assert users["convert"].segment == skippers
    assert moved == [("convert", clickers, skippers)]


def _wobble(hysteresis, block):
    """Clickers, skippers, and a user who alternates runs of ``block`` clicks and skips (short
    memory: the wobbler's averages follow each run); the wobbler's moves."""
    model = BehaviourModel(BehaviourParams(n_clusters=2, halflife=0.05, hysteresis=hysteresis, memory=0.5,
                                           min_events=2, taste_dims=0, seed=0))
    batches = []
    for n in range(4000):
        batch = [(f"clicker{n % 4}", 2.0), (f"skipper{n % 4}", -1.0 if (n // 4) % 5 else 0.5)]
        if n % 4 == 0:
            batch.append(("wobbler", 2.0 if ((n // 4) // block) % 2 else -1.0))
        batches.append(batch)
    return sum(user == "wobbler" for user, _, _ in _learn(model, batches)[2])


def test_hysteresis_damps_short_wobbles_but_follows_lasting_changes():
    assert _wobble(hysteresis=1, block=3) > 50  # 333 runs of 3: the proposals flip on every other update
    assert _wobble(hysteresis=2, block=3) == 0
    assert _wobble(hysteresis=3, block=40) >= 20  # 25 changes of habit, each a move


def test_a_burst_of_one_users_events_is_one_step_of_the_clusterer():
    model = _two(0)
    users, clusterer, _ = _learn(model, _behaviour_stream(200))
    n = clusterer.n
    model.learn([("clicker0", 2.0)] * 5 + [("skipper0", -1.0)] * 3, users, clusterer, {})
    assert clusterer.n == n + 2  # two users: two updates, however many events
    assert users["clicker0"].events == 50 + 5  # every event counts in the user's behaviour


def test_taste_comes_from_the_mf_row_through_a_fixed_projection():
    model = BehaviourModel(BehaviourParams(taste_dims=2, seed=4), n_factors=8)
    v = np.arange(8, dtype=np.float32)
    np.testing.assert_allclose(model.taste(v), model.taste(3 * v))  # unit length first
    assert model.taste(None).tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(BehaviourModel(BehaviourParams(taste_dims=2, seed=4), n_factors=8).taste(v),
                                  model.taste(v))  # the same projection in every process


def test_behaviour_checks_its_arguments():
    with pytest.raises(ValueError, match="n_clusters must be in 1..32"):
        BehaviourParams(n_clusters=40)
    with pytest.raises(ValueError, match="warmup >= n_clusters"):
        BehaviourParams(n_clusters=8, warmup=4)


def _event(kind, n, user, **extra):
    return validate_event(kind, json.dumps(make_event(kind, event_id=f"e{n}", user_id=user, ts=float(n), **extra)))


def test_the_engine_leaves_out_profiled_users_and_events_without_a_signal():
    ranker = EngineRanker(EngineConfig(hybrid=HybridParams(mf={"n_factors": 4}), rerank=None, explore_share=0.0,
                                       behaviour=BehaviourParams(n_clusters=2, min_events=1, warmup=4, taste_dims=0)))
    ranker.apply_profile("profiled", {"segment": "kids"})
    events = [_event("click", n, user, item_id=f"i{n}") for n, user in enumerate(["profiled", "anon", "anon"])]
    events.append(_event("impression", 3, "viewer", items=["i1"], rec_id="r"))
    ranker.step(events)
    records = ranker.state.user_records
    assert records["profiled"].behaviour is None and records["viewer"].behaviour is None
    assert records["anon"].behaviour.events == 2.0
    assert (ranker.state.clusterer.events, ranker.state.clusterer.users) == (2.0, 1.0)
    ranker.close()
