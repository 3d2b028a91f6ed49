"""OnlineMF: agreement with the per-event reference, known answers, growth, errors."""

import numpy as np
import pytest

from stream.models._reference import reference_batch_learn, reference_learn
from stream.models.mf import OnlineMF


def _warm_model(n_users=6, n_items=6, **params):
    model = OnlineMF(n_factors=5, n_negatives=0, learning_rate=0.1, l2=0.01, seed=3, **params)
    rng = np.random.default_rng(0)
    m = max(n_users, n_items)
    users = [f"u{x}" for x in rng.integers(0, n_users, 40)] + [f"u{x % n_users}" for x in range(m)]
    items = [f"i{x}" for x in rng.integers(0, n_items, 40)] + [f"i{x % n_items}" for x in range(m)]
    model.learn_many(users, items)
    return model


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 2.5, -0.5], [0.0, 1.0, -2.0, 0.3]])
def test_vectorised_update_matches_reference_without_colliding_ids(weights):
    model = _warm_model()
    users, items = ["u0", "u1", "u2", "u3"], ["i3", "i0", "i5", "i1"]  # no user or item twice
    expected = reference_learn(model, [model._users.get(u) for u in users], [model._items.get(i) for i in items], weights)
    model.learn_many(users, items, weights)
    state = model.state()
    for name in ("P", "Q", "bu", "bi", "aP", "aQ", "abu", "abi"):
        actual = state[name]
        np.testing.assert_allclose(actual, expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("weights", [[1.0] * 7, [1.0, -1.0, 2.5, 0.0, 1.0, -0.5, 3.0]])
def test_vectorised_update_matches_the_batch_rule_with_repeated_users_and_items(weights):
    # guards the scatter-add of repeated rows: users through collapse_repeats (last
    # occurrence collects), items through runs of the item-sorted batch, and the
    # per-example squared norms in the Adagrad accumulator of both
    model = _warm_model()
    users, items = ["u0", "u1", "u0", "u2", "u0", "u3", "u1"], ["i1", "i1", "i2", "i1", "i3", "i2", "i4"]
    expected = reference_batch_learn(model, [model._users.get(u) for u in users],
                                     [model._items.get(i) for i in items], weights)
    model.learn_many(users, items, weights)
    state = model.state()
    for name in ("P", "Q", "bu", "bi", "aP", "aQ", "abu", "abi"):
        np.testing.assert_allclose(state[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_colliding_ids_sum_their_gradients_before_one_step():
    # A repeated (user, item) in one batch is one Adagrad step on the summed gradient,
    # not two sequential steps: different numbers, same direction.
    batched, sequential = _warm_model(), _warm_model()
    before = batched.predict_one("u0", "i0")
    batched.learn_many(["u0", "u0"], ["i0", "i0"])
    sequential.learn_one("u0", "i0")
    sequential.learn_one("u0", "i0")
    assert batched.predict_one("u0", "i0") > before and sequential.predict_one("u0", "i0") > before
    assert batched.predict_one("u0", "i0") != pytest.approx(sequential.predict_one("u0", "i0"), abs=1e-7)


def _checkerboard(n=8):
    """Two blocks of n/2 users and items; user j has every item of its block but item j."""
    half = n // 2
    users, items = [], []
    for u in range(n):
        block = range(0, half) if u < half else range(half, n)
        for i in block:
            if i != u:
                users.append(f"u{u}")
                items.append(f"i{i}")
    return users, items


def test_checkerboard_user_i_gets_item_i():
    users, items = _checkerboard()
    model = OnlineMF(n_factors=8, learning_rate=0.1, n_negatives=4, negative_weight=0.5, seed=1)
    for _ in range(150):
        model.learn_many(users, items)
    assert [model.rank(f"u{u}", k=1) for u in range(8)] == [[f"i{u}"] for u in range(8)]


def test_arrays_grow_with_new_ids_and_rows_are_float32():
    model = OnlineMF(n_factors=4, seed=0)
    model.learn_many([f"u{x}" for x in range(20)], [f"i{x}" for x in range(30, 10, -1)])
    model.learn_one("new-user", "new-item")
    assert (model.n_users, model.n_items) == (21, 21)
    assert model.user_factors.shape == (21, 4) and model.item_factors.dtype == np.float32
    assert model.scores("new-user").shape == (21,)


def test_unknown_user_gets_item_biases_and_seen_items_are_left_out():
    model = OnlineMF(n_factors=4, seed=0)
    model.learn_many(["a", "a", "b"], ["x", "y", "x"])
    np.testing.assert_array_equal(model.scores("nobody"), model.item_biases)
    assert model.rank("a", k=5) == []
    assert model.rank("b", k=5) == ["y"]


def test_skip_lowers_the_score():
    model = OnlineMF(n_factors=4, n_negatives=0, seed=0)
    model.learn_many(["a", "b"], ["x", "x"])
    before = model.predict_one("a", "x")
    model.learn_one("a", "x", -3.0)
    assert model.predict_one("a", "x") < before


def test_shape_errors_state_the_rule():
    model = OnlineMF(n_factors=4)
    with pytest.raises(ValueError, match="same length"):
        model.learn_many(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="one value per event"):
        model.learn_many(["a"], ["x"], [1.0, 2.0])
    with pytest.raises(ValueError, match="n_factors must be > 0"):
        OnlineMF(n_factors=0)
    state = model.state()
    state["P"] = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="P must have shape"):
        OnlineMF.from_state(state)


def test_rank_is_topk_by_argpartition_consistent_with_full_sort():
    model = _warm_model(n_users=10, n_items=40)
    scores = model.scores("u1")
    seen = set(model._seen_indices("u1").tolist())
    full = [j for j in np.argsort(-scores, kind="stable") if j not in seen][:7]
    assert model.rank("u1", k=7) == [model.item_ids[j] for j in full]
