"""The closed loop's ground truth: the response model over a shown list, the world's prices, and
the open stream left exactly as it was."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from producers.response import ResponseModel, respond
from producers.simulator import World, WorldConfig

WORLD = World(WorldConfig(n_users=50, n_items=80, n_segments=3, n_categories=4, seed=5))


def _stream_hash(config: WorldConfig, n: int, **kw) -> str:
    world = World(config)
    events = list(world.generate(n, **kw))
    setup = (list(world.profiles(ts=5.0)), list(world.catalogue(ts=5.0)))
    return hashlib.sha256(json.dumps([events, setup], sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("config, n, kw, digest", [
    (WorldConfig(n_users=100, n_items=60, n_segments=3, n_categories=4, seed=11), 3000, {"start_ts": 100.0},
     "96c632938c16881f7982ed5d0f4558ef8831a96fb5ab97bca4ccce4899c783b4"),
    (WorldConfig(n_users=200, n_items=80, seed=5, drift_at=500, drift_segment=1), 2000, {"run_id": "x"},
     "290dd3c5f539e0dc1ff57d9a40817fd6eba13a31d1e5b4cf555eb2e48949acfd"),
    (WorldConfig(), 2000, {}, "5f4881885a73f88ec8b00eedf2333ed14af484320d4e1b24c19431a8db9f4b92"),
])
def test_the_open_stream_is_byte_identical_to_before_the_closed_loop(config, n, kw, digest):
    """Guards the evaluation figures: these digests were taken on main before prices and the
    response model were added (the same NumPy on the same machine); a change of a single draw
    changes them."""
    assert _stream_hash(config, n, **kw) == digest


def test_prices_are_seeded_positive_and_leave_the_world_as_it_was():
    a, b = World(WorldConfig(seed=3)), World(WorldConfig(seed=3))
    assert np.array_equal(a.item_price, b.item_price) and (a.item_price > 0).all()
    assert not np.array_equal(a.item_price, World(WorldConfig(seed=4)).item_price)
    assert 10.0 < float(np.median(a.item_price)) < 40.0  # log-normal around the median 20
    dearer = World(WorldConfig(seed=3, price_median=200.0))
    assert np.array_equal(dearer.user_vectors, a.user_vectors) and float(np.median(dearer.item_price)) > 100.0
    with pytest.raises(ValueError, match="price_median"):
        WorldConfig(price_median=0.0)


def test_same_generator_state_same_reactions_different_seed_different():
    shown = list(range(10))
    runs = [[respond(WORLD, u, shown, np.random.default_rng(seed)) for u in range(50)] for seed in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def _clicks_by_position(shown, n_draws=4000, user=0, model=ResponseModel()):
    rng = np.random.default_rng(9)
    counts = np.zeros(len(shown))
    for _ in range(n_draws):
        for r in respond(WORLD, user, shown, rng, model):
            if r.event_type == "click":
                counts[r.rank - 1] += 1
    return counts / n_draws


def test_position_bias_the_same_item_is_clicked_more_at_the_top():
    user = 0
    item = int(np.argmax(WORLD.affinity(user)))  # the same affinity at every position
    rate = _clicks_by_position([item] * 10, user=user)
    assert rate[0] > rate[4] > rate[9] > 0
    # the examination curve: 1 / log2(1 + p); 4,000 draws leave about 0.01 of noise
    expected = rate[0] * np.array([ResponseModel.examination(p) for p in range(1, 11)])
    assert np.allclose(rate, expected, atol=0.04)


def test_higher_true_affinity_is_clicked_more_at_the_same_position():
    user = 1
    order = np.argsort(WORLD.affinity(user))
    worst, best = int(order[0]), int(order[-1])
    at_top = [_clicks_by_position([item], user=user)[0] for item in (worst, best)]
    assert at_top[1] > 5 * at_top[0] and at_top[1] > at_top[0] + 0.1


def test_reactions_follow_each_click_and_purchases_cost_the_price():
    rng = np.random.default_rng(4)
    purchases = 0
    for u in range(50):
        shown = [int(i) for i in np.argsort(WORLD.affinity(u))[::-1][:10]]  # the best list there is
        reactions = respond(WORLD, u, shown, rng, ResponseModel(purchase_offset=-2.0))  # purchases often
        for i, r in enumerate(reactions):
            assert 1 <= r.rank <= 10 and r.item == shown[r.rank - 1]
            if r.event_type == "click":  # a click is followed by its dwell or skip on the same rank
                assert reactions[i + 1].event_type in ("dwell", "skip") and reactions[i + 1].rank == r.rank
            if r.event_type == "purchase":
                purchases += 1
                assert reactions[i - 1].event_type == "dwell" and reactions[i - 1].rank == r.rank
                assert r.fields == {"value": float(WORLD.item_price[r.item]), "currency": "EUR"}
        assert [r.rank for r in reactions] == sorted(r.rank for r in reactions)
    assert purchases > 0


def test_without_purchases_none_is_drawn_and_unknown_items_are_never_clicked():
    rng = np.random.default_rng(4)
    best = [int(i) for i in np.argsort(WORLD.affinity(2))[::-1][:5]]
    kinds = {r.event_type for _ in range(300) for r in respond(WORLD, 2, best, rng, ResponseModel(purchases=False))}
    assert kinds == {"click", "dwell", "skip"}
    with_unknown = [None, *best]
    ranks = {r.rank for _ in range(300) for r in respond(WORLD, 2, with_unknown, rng)}
    assert 1 not in ranks and 2 in ranks


def test_a_better_list_earns_more_and_nothing_else_counts():
    """Known answer: for every user the list of their truly best items beats their worst items,
    in clicks and revenue, over the same draws."""
    clicks, revenue = np.zeros(2), np.zeros(2)
    for u in range(50):
        order = np.argsort(WORLD.affinity(u))
        for j, shown in enumerate(([int(i) for i in order[:10]], [int(i) for i in order[::-1][:10]])):
            rng = np.random.default_rng(u)
            for _ in range(20):
                for r in respond(WORLD, u, shown, rng):
                    clicks[j] += r.event_type == "click"
                    revenue[j] += r.fields.get("value", 0.0) if r.event_type == "purchase" else 0.0
    assert clicks[1] > 3 * clicks[0] and revenue[1] > 3 * revenue[0]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="currency"):
        ResponseModel(currency="eur")
    with pytest.raises(ValueError, match="1-based"):
        ResponseModel.examination(0)


def test_item_index_knows_only_the_worlds_items():
    assert WORLD.item_index("i000042") == 42
    assert [WORLD.item_index(x) for x in ("i000080", "x000001", "i42", "")] == [None] * 4
