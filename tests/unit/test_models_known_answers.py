"""Known answers on tiny data, for each model concept where the answer is obvious; the blend's
parts run as the engine runs them (an EngineRanker with the evaluation's configurations)."""

import numpy as np
import pytest

from stream.contract import validate_event
from stream.engine.config import EngineConfig
from stream.engine.offline import EngineRanker
from stream.evaluation.baselines import cooccurrence_config, popularity_config
from stream.models import IdIndex, OnlineMF, SeenItems, top_k
from stream.models.hybrid import HybridParams
from stream.models.popularity import ItemPopularity, decay_rate, plan


class _Events:
    def __init__(self):
        self.n = 0

    def __call__(self, kind, user, item, **extra):
        self.n += 1
        return validate_event(kind, {"event_id": f"e{self.n}", "user_id": user, "item_id": item,
                                     "ts": float(extra.pop("ts", self.n)), "schema": "v1", **extra})


def _checkerboard(n=8):
    """Two blocks of n/2 users and items; user j has every item of its block but item j."""
    half = n // 2
    return [(f"u{u}", f"i{i}") for u in range(n) for i in (range(half) if u < half else range(half, n)) if i != u]


CONFIGS = {
    "item-knn": cooccurrence_config(recency=False),
    "item-knn-recency": cooccurrence_config(recency=True),
    "hybrid": EngineConfig(hybrid=HybridParams(mf_weight=0.3, mf={"n_factors": 8, "seed": 1}, popularity_weight=0.1),
                           rerank=None, behaviour=None, explore_share=0.0),
    "served": EngineConfig(hybrid=HybridParams(mf={"n_factors": 8, "seed": 1}), explore_share=0.0),
}


@pytest.mark.parametrize("batch", [1000, 5, 1])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_checkerboard_user_i_gets_item_i(name, batch):
    ranker, click = EngineRanker(CONFIGS[name]), _Events()
    events = [click("click", u, i) for u, i in _checkerboard()]
    for s in range(0, len(events), batch):
        ranker.step(events[s:s + batch])
    assert [ranker.recommend(f"u{u}", 1) for u in range(8)] == [[f"i{u}"] for u in range(8)]


def _cooccurrence(**params) -> EngineRanker:
    return EngineRanker(EngineConfig(hybrid=HybridParams(mf_weight=0.0, cooccurrence_weight=1.0, popularity_weight=0.0,
                                                         cooccurrence=params),
                                     rerank=None, behaviour=None, explore_share=0.0))


def test_recency_weighting_follows_the_latest_taste():
    # a and b co-occur, c and d co-occur; the user's latest positive is c, so d comes first
    click = _Events()
    ranker = _cooccurrence(decay=0.5, history=10)
    ranker.step([click("click", "x", "a"), click("click", "x", "b"), click("click", "y", "c"),
                 click("click", "y", "d")])
    ranker.step([click("click", "me", "a"), click("click", "me", "c")])
    assert ranker.recommend("me", 2) == ["d", "b"]
    plain, click = _cooccurrence(), _Events()
    plain.step([click("click", u, i) for u, i in [("x", "a"), ("x", "b"), ("y", "c"), ("y", "d")]])
    plain.step([click("click", "me", "a"), click("click", "me", "c")])
    assert plain.recommend("me", 2) == ["b", "d"]  # no decay: a tie, broken by the lower row


def test_a_pair_counts_once_per_user_however_often_they_click():
    click = _Events()
    ranker = _cooccurrence()
    ranker.step([click("click", "x", "a"), click("click", "x", "b"), click("click", "x", "a"),
                 click("dwell", "x", "b", seconds=60.0), click("click", "y", "a"), click("click", "y", "c")])
    table = ranker.table
    row = table.row(table.get("a"))
    ids, counts = table.neighbours(table.get("a"))
    assert (ids, counts.tolist(), row.n) == (["b", "c"], [1.0, 1.0], 2.0)


def test_popularity_counts_positives_only():
    click = _Events()
    ranker = EngineRanker(popularity_config())
    ranker.step([click("click", "a", "x"), click("click", "b", "x"), click("skip", "c", "y", after_seconds=1.0),
                 click("impression", "d", "z", items=["z"], rec_id="r"), click("dwell", "e", "w", seconds=60.0)])
    assert ranker.recommend("new", 4)[:2] == ["x", "w"]  # x: 2 clicks, w: one dwell of 0.5; y, z: nothing
    table = ranker.table
    assert table.pop.scores(table.n_items)[table.rows(["x", "w", "y", "z"])].tolist() == [2.0, 0.5, 0.0, 0.0]


def test_popularity_decays_with_event_time():
    pop = ItemPopularity(half_life=1.0)
    pop.grow(2)
    pop.add(np.array([0]), np.array([1.0]), ref=0.0)
    pop.add(np.array([1]), np.array([1.0]), ref=2.0)
    assert pop.scores(2).tolist() == pytest.approx([0.25, 1.0])  # two half-lives apart
    # far apart in time: the reference moves and the old scores are rescaled, nothing overflows
    rate = decay_rate(1.0)
    ref, factor, inc = plan(0.0, [(1000.0, 1.0, "x")], rate)
    assert ref == 1000.0 and factor == pytest.approx(2.0 ** -1000) and inc == {"x": 1.0}
    assert plan(0.0, [(5.0, -1.0, "x")], rate) == (0.0, None, {})  # a negative counts nothing


def test_top_k_ties_break_by_index_and_exclusions_shrink_the_list():
    scores = np.array([1.0, 3.0, 3.0, 0.0], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [1, 2, 0]
    assert top_k(scores, 10, exclude=np.array([1, 1, 0])).tolist() == [2, 3]
    with pytest.raises(ValueError, match="k must be > 0"):
        top_k(scores, 0)


def test_top_k_breaks_a_tie_at_the_cut_by_the_lower_index():
    """Guards a bug (stream/models/base.py, top_k): the docstring promises ties broken by the
    lower index, but ``np.argpartition`` picks any of the items tied at the k-th place, so
    the list of ``k`` is not the first ``k`` of a longer list."""
    scores = np.array([0.0, 0.0, 1.0, 1.0])
    assert top_k(scores, 2).tolist() == [2, 3]
    assert top_k(scores, 1).tolist() == [2]
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.integers(0, 3, 20).astype(np.float64)
        k = int(rng.integers(1, 20))
        assert top_k(s, k).tolist() == top_k(s, 20).tolist()[:k], (s.tolist(), k)


def test_seen_items_survive_compaction_and_csr_round_trip():
    seen = SeenItems()
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 20_000), rng.integers(0, 300, 20_000)
    for s in range(0, 20_000, 700):
        seen.add_many(users[s : s + 700], items[s : s + 700])
    expected = {u: sorted(set(items[users == u].tolist())) for u in range(50)}
    assert all(seen.get(u).tolist() == expected[u] for u in range(50))
    restored = SeenItems.from_arrays(*seen.to_arrays(50))
    assert all(restored.get(u).tolist() == expected[u] for u in range(50))


def test_id_index_keeps_first_seen_order_and_round_trips():
    index = IdIndex()
    assert index.add_many(["b", "a", "b", "c"]).tolist() == [0, 1, 0, 2]
    assert index.add_many(["c", "a"]).tolist() == [2, 1]
    assert IdIndex.from_array(index.to_array()).ids == ["b", "a", "c"]


def test_ids_from_numpy_arrays_are_stored_as_plain_str_and_empty_batches_are_fine():
    model = OnlineMF(n_factors=4)
    model.learn_many([], [])
    model.learn_many(np.array(["a", "b"]), np.array(["x", "y"]), np.array([1.0, -1.0]))
    assert all(type(i) is str for i in model.item_ids + model.user_ids)
    assert model.rank("b", 5) == ["x"]
    empty = EngineRanker(popularity_config())
    assert empty.step([]) == [] and empty.recommend("nobody") == []
