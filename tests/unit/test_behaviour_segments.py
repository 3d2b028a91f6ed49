"""Behaviour segments in the worker (stream/agents/behaviour_segments.py) assign what the
offline BehaviourSegmenter assigns on the same events, batch after batch, with the state
going through what the apply script stores (here a dict doing what the Lua does; the Lua
itself runs on a real Redis in tests/integration/test_behaviour_segments.py)."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from stream.agents.behaviour_segments import BehaviourSegments
from stream.contract import make_event, validate_event
from stream.metrics import build
from stream.models.behaviour import BehaviourSegmenter
from stream.signals import signal_weight
from stream.store.behaviour_state import USER_BEHAVIOUR_FIELDS
from stream.store.keys import Keys
from tests.helpers import behaviour_events

KEYS = Keys("t")
PARAMS = dict(n_clusters=3, halflife=0.05, hysteresis=2, memory=0.2, min_events=2, taste_dims=0, warmup=30, seed=4)


class FakePipe:
    def __init__(self, store):
        self.store, self.calls = store, []

    def hgetall(self, key):
        self.calls.append(lambda: {k.encode(): str(v).encode() for k, v in self.store.model.items()})

    def lrange(self, key, start, end):
        self.calls.append(lambda: [v.encode() for v in self.store.warmup])

    async def execute(self):
        return [call() for call in self.calls]


class FakeStore:
    """The apply script's behaviour part, in Python."""

    def __init__(self):
        self.model: dict[str, float | str] = {}
        self.warmup: list[str] = []
        self.users: dict[str, list] = {}

    def pipeline(self, transaction=False):
        return FakePipe(self)

    def apply(self, args: dict) -> None:
        b = args["behaviour"]
        for row in b["users"]:
            self.users[row[0]] = dict(zip(row[1::2], row[2::2]))
        for f, v in zip(b["add"][::2], b["add"][1::2]):
            self.model[f] = float(self.model.get(f, 0.0)) + v
        if b["centres"]:
            if "seeded" not in self.model:
                self.model["seeded"] = "1"
                self.model.update(dict(zip(b["centres"][::2], b["centres"][1::2])))
                self.warmup = []
        elif "seeded" in self.model:
            for f, v in zip(b["moves"][::2], b["moves"][1::2]):
                self.model[f] = float(self.model[f]) + v
        else:
            self.warmup += b["warmup"]

    def loaded(self, user_id: str) -> list:
        row = self.users.get(user_id)
        return [row.get(f) for f in USER_BEHAVIOUR_FIELDS] if row else [None] * len(USER_BEHAVIOUR_FIELDS)


def test_the_worker_assigns_what_the_offline_segmenter_assigns():
    events = behaviour_events(1500, seed=1)
    offline = BehaviourSegmenter(**PARAMS)
    for ev in events:
        if signal_weight(ev) != 0:
            offline.learn_one(ev.user_id, signal_weight(ev))

    store = FakeStore()
    worker = BehaviourSegments(store, KEYS, build(), n_factors=8, **PARAMS)
    moved = 0
    for i in range(0, len(events), 50):  # batches: the state goes through the store between them
        batch = events[i:i + 50]
        clusterer = asyncio.run(worker.load())
        loaded = {ev.user_id: store.loaded(ev.user_id) for ev in batch}
        updates = worker.learn(batch, loaded, {}, set(), clusterer)
        store.apply(updates.script_args())
        moved += len(updates.moved)

    assigned = {u: row["segment"] for u, row in store.users.items() if row["segment"]}
    assert assigned == offline.assignments.users
    assert moved == offline.assignments.n_moves > 0  # the switchers moved, and were counted
    clickers = {assigned[u] for u in assigned if u.startswith("clicker")}
    skippers = {assigned[u] for u in assigned if u.startswith("skipper")}
    assert len(clickers) == len(skippers) == 1 and clickers != skippers
    switchers = [assigned[u] for u in assigned if u.startswith("switcher")]
    assert switchers.count(skippers.pop()) > len(switchers) / 2  # they ended with the skippers
    centres = np.array([[float(store.model[f"c{j}:{f}"]) for f in ("activity", "dwell", "skip")] for j in range(3)])
    offline_centres = np.array([[offline._kmeans.centers[j][f] for f in ("activity", "dwell", "skip")]
                                for j in range(3)])
    np.testing.assert_allclose(centres, offline_centres, atol=1e-9)


def test_profiled_users_and_events_without_a_signal_are_left_out():
    store = FakeStore()
    worker = BehaviourSegments(store, KEYS, build(), n_factors=8, **PARAMS)
    events = behaviour_events(40, seed=2)
    impression = validate_event("impression", json.dumps(make_event(
        "impression", event_id="imp", user_id="nobody", item_id="i1", ts=1.0, items=["i1"], rec_id="r")).encode())
    profiled = {events[0].user_id}
    updates = worker.learn(events + [impression], {}, {}, profiled, asyncio.run(worker.load()))
    assert events[0].user_id not in updates.users and "nobody" not in updates.users
    counted = sum(1 for ev in events if ev.user_id not in profiled)
    assert updates.add["events"] == counted == sum(float(v[0]) for v in updates.users.values())
