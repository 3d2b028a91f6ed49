"""The worker's segment re-rankers (stream/agents/segment_models.py) over a fake Redis:
transfer, learning direction, the guard's fallback, trials, determinism. The Lua side (the
guard's rule, the apply call) runs on a real Redis in tests/integration/test_segment_models.py."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from stream.agents.segment_models import COLUMNS, SegmentModels, rerank_params
from stream.contract import make_event, validate_event
from stream.metrics import build
from stream.models.sharded import ShardedMF
from stream.store.keys import Keys
from stream.store.segment_state import SHARED_LAYER, SegmentUpdates

KEYS = Keys("t")


class FakePipe:
    def __init__(self, redis):
        self.redis, self.calls = redis, []

    def hgetall(self, key):
        self.calls.append(lambda: {k.encode(): repr(v).encode() for k, v in self.redis.hashes.get(key, {}).items()})

    def hget(self, key, field):
        self.calls.append(lambda: (lambda v: None if v is None else str(v).encode())(
            self.redis.hashes.get(key, {}).get(field)))

    async def execute(self):
        return [call() for call in self.calls]


class FakeRedis:
    def __init__(self):
        self.hashes: dict[str, dict] = {}
        self.zsets: dict[str, dict] = {}

    def pipeline(self, transaction=False):
        return FakePipe(self)

    def register_script(self, script):
        async def segment_popularity(args):  # what SEGMENT_POPULARITY_LUA answers
            a = json.loads(args[0])
            return [[repr(self.zsets[f"{a['prefix']}:pop:{seg}"][i]).encode()
                     if i in self.zsets.get(f"{a['prefix']}:pop:{seg}", {}) else b"" for i in items]
                    for seg, items in a["segments"]]
        return segment_popularity

    def apply(self, updates: SegmentUpdates) -> None:
        """What the apply script does with the weight changes."""
        for layer, changes in updates.layers.items():
            h = self.hashes.setdefault(KEYS.rerank(layer), {})
            for f, c in changes.items():
                h[f] = h.get(f, 0.0) + c


def _click(n: int, user: str, item: str):
    return validate_event("click", json.dumps(make_event("click", event_id=f"e{n}", user_id=user, item_id=item,
                                                         ts=1.0 + n)).encode())


def _setup(segment_params=None):
    mf = ShardedMF({"n_factors": 8, "seed": 1})
    items = [f"i{j}" for j in range(30)]
    mf.item_rows(items)
    state = mf.new_user("u")
    redis = FakeRedis()
    # the segment's popularity favours the items the MF model ranks low
    scores = mf.scores(state)
    redis.zsets[KEYS.pop("s")] = {items[j]: float(r) for r, j in enumerate(np.argsort(scores))}
    params = rerank_params({"model": "SegmentedRanker", "params": {"n_candidates": 20, "n_negatives": 4,
                                                                   "learning_rate": 0.5,
                                                                   "segment_params": segment_params}})
    return SegmentModels(mf, redis, KEYS, params, build()), redis, state, items


def _run(coro):
    return asyncio.run(coro)


def test_an_untrained_reranker_serves_the_mf_ranking():
    sm, redis, state, _ = _setup()
    view = _run(sm.view(["s"]))
    cands = _run(sm.candidates([("u", state, [], "s")], view, 10))["u"]
    assert cands.X.shape == (20, len(COLUMNS)) and cands.X.min() >= 0 and cands.X.max() <= 1
    served, by_segment = sm.served(cands, view, 10)
    assert by_segment and [i for i, _ in served] == [i for i, _ in sm.mf.rank(state, 10)]


def test_learning_moves_the_segment_towards_what_its_users_click():
    sm, redis, state, items = _setup()
    view = _run(sm.view(["s"]))
    cands = _run(sm.candidates([("u", state, [], "s")], view, 10))["u"]
    low = cands.ids[-1]  # last by MF among the candidates, first by the segment's popularity
    before = cands.segment_top(20)
    assert [i for i, _ in before].index(low) == 19
    for n in range(20):
        updates = SegmentUpdates()
        view = _run(sm.view(["s"]))
        cands = _run(sm.candidates([("u", state, [], "s")], view, 10))
        sm.learn([_click(n, "u", low)], cands, view, updates)
        redis.apply(updates)
    assert set(redis.hashes) == {KEYS.rerank(SHARED_LAYER), KEYS.rerank("s")}
    assert redis.hashes[KEYS.rerank("s")]["base"] > 0  # the stacked layer follows the shared one
    view = _run(sm.view(["s"]))
    after = _run(sm.candidates([("u", state, [], "s")], view, 10))["u"]
    assert [i for i, _ in after.segment_top(3)][0] == low
    assert [i for i, _ in after.global_top(20)] == [i for i, _ in before]  # the MF ranking is untouched


def test_a_segment_whose_guard_fell_back_is_served_the_mf_ranking():
    sm, redis, state, items = _setup()
    redis.hashes[KEYS.rerank("s")] = {"base": -5.0}  # a layer that ranks in reverse
    view = _run(sm.view(["s"]))
    cands = _run(sm.candidates([("u", state, [], "s")], view, 10))["u"]
    assert sm.served(cands, view, 5)[0] != cands.global_top(5)
    redis.hashes[KEYS.guard("s")] = {"serving": "global"}
    view = _run(sm.view(["s"]))
    assert view.serving == {"s": False}
    assert sm.served(cands, view, 5) == (cands.global_top(5), False)


def test_trials_compare_both_rankings_on_the_same_click():
    sm, redis, state, _ = _setup(segment_params={"s": {"guard_window": 50, "guard_min_trials": 80}})
    redis.hashes[KEYS.rerank("s")] = {"base": -5.0}
    view = _run(sm.view(["s"]))
    cands = _run(sm.candidates([("u", state, [], "s")], view, 10))
    c = cands["u"]
    top_mf, top_seg = c.ids[0], c.segment_top(1)[0][0]
    updates = SegmentUpdates()
    sm.trials([(3, _click(1, "u", top_mf)), (7, _click(2, "u", top_seg)), (9, _click(3, "nobody", top_mf))],
              cands, 1, updates)
    assert updates.trials == {"s": [(3, -1), (7, 1)]}  # a user without candidates is no trial
    assert updates.guard_params == {"s": [50, 50, 0.01, 2.0, 0.0]}  # min_trials capped at the window
    args = updates.script_args()
    assert args["guards"] == [["s", [[4, -1], [8, 1]], [50, 50, 0.01, 2.0, 0.0]]]  # positions from 1, for Lua


def test_learning_is_deterministic_and_skips_what_it_cannot_rank():
    changes = []
    for _ in range(2):
        sm, redis, state, items = _setup()
        view = _run(sm.view(["s"]))
        cands = _run(sm.candidates([("u", state, [items[0]], "s")], view, 10))
        updates = SegmentUpdates()
        learned = sm.learn([_click(1, "u", cands["u"].ids[5]), _click(2, "u", items[0]),  # seen: not a candidate
                            _click(3, "other", items[1])], cands, view, updates)  # no candidates
        assert learned == {"s": 4}
        changes.append(updates.layers)
    assert changes[0] == changes[1] and changes[0]["s"]


def test_rerank_params_are_segmented_rankers_unless_a_configuration_says_otherwise():
    p = rerank_params(None)
    assert p["n_candidates"] == 100 and p["segment_params"] is None and p["guard_window"] == 500
    assert rerank_params({"model": "OnlineMF", "params": {"n_factors": 8}}) == p  # not a SegmentedRanker
    tuned = rerank_params({"model": "SegmentedRanker", "params": {"guard_z": 3.0, "max_segments": 4}})
    assert tuned == {**p, "guard_z": 3.0}  # what the worker does not use is left out
