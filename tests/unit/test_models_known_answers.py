"""Known answers on tiny data, for each model where the answer is obvious."""

import numpy as np
import pytest

from stream.models import Cooccurrence, HybridRanker, IdIndex, Popularity, SeenItems, top_k


def _checkerboard(n=8):
    """Two blocks of n/2 users and items; user j has every item of its block but item j."""
    half = n // 2
    pairs = [(f"u{u}", f"i{i}") for u in range(n) for i in (range(half) if u < half else range(half, n)) if i != u]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.mark.parametrize("model", [
    Cooccurrence(),
    Cooccurrence(decay=0.7, history=30, window=30),
    HybridRanker(mf_weight=0.3, mf={"n_factors": 8, "seed": 1}, popularity_weight=0.1),
], ids=["item-knn", "item-knn-recency", "hybrid"])
def test_checkerboard_user_i_gets_item_i(model):
    users, items = _checkerboard()
    model.learn_many(users, items)
    assert [model.rank(f"u{u}", k=1) for u in range(8)] == [[f"i{u}"] for u in range(8)]


def test_recency_weighting_follows_the_latest_taste():
    # a and b co-occur, c and d co-occur; the user's latest positive is c, so d comes first
    model = Cooccurrence(decay=0.5, history=10)
    model.learn_many(["x", "x", "y", "y"], ["a", "b", "c", "d"])
    model.learn_many(["me", "me"], ["a", "c"])
    assert model.rank("me", k=2) == ["d", "b"]
    plain = Cooccurrence()
    plain.learn_many(["x", "x", "y", "y", "me", "me"], ["a", "b", "c", "d", "a", "c"])
    s = plain.scores("me")
    assert s[plain.item_ids.index("b")] == pytest.approx(s[plain.item_ids.index("d")])


def test_popularity_counts_positives_only_and_decays():
    pop = Popularity()
    pop.learn_many(["a", "b", "c", "d"], ["x", "x", "y", "z"], [1.0, 1.0, -1.0, 0.0])
    assert pop.rank("new", k=3)[0] == "x"
    assert pop.scores("new").tolist() == [2.0, 0.0, 0.0]
    decayed = Popularity(half_life=1.0)
    decayed.learn_many(["a"], ["old"], timestamps=[0.0])
    decayed.learn_many(["b"], ["new"], timestamps=[2.0])
    assert decayed.scores("q").tolist() == [0.25, 1.0]


def test_top_k_ties_break_by_index_and_exclusions_shrink_the_list():
    scores = np.array([1.0, 3.0, 3.0, 0.0], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [1, 2, 0]
    assert top_k(scores, 10, exclude=np.array([1, 1, 0])).tolist() == [2, 3]
    with pytest.raises(ValueError, match="k must be > 0"):
        top_k(scores, 0)


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
    from stream.models import OnlineMF

    model = OnlineMF(n_factors=4)
    model.learn_many([], [])
    assert HybridRanker().rank("nobody") == []
    model.learn_many(np.array(["a", "b"]), np.array(["x", "y"]), np.array([1.0, -1.0]))
    assert all(type(i) is str for i in model.item_ids + model.user_ids)
    assert model.rank("b", 5) == ["x"]
