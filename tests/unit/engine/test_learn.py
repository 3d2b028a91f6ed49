"""The learning step's seeding (stream/engine/learn.py): the same batch learns the same anywhere."""

from __future__ import annotations

import numpy as np

from stream.engine.learn import batch_seed
from stream.models.sharded import ShardedMF

PARAMS = {"n_factors": 6, "learning_rate": 0.1, "n_negatives": 8, "seed": 2}
ITEMS = [f"i{n}" for n in range(50)]


def test_batch_seed_depends_on_the_event_ids_and_their_order_only():
    ids = ["e1", "e2", "e3"]
    assert batch_seed(ids) == batch_seed(list(ids))
    assert batch_seed(ids) != batch_seed(["e3", "e2", "e1"])
    assert batch_seed(ids) != batch_seed(["e1", "e2"])
    assert batch_seed(["a", "bc"]) != batch_seed(["ab", "c"])  # ids are separated, not glued
    assert all(isinstance(x, int) and x >= 0 for x in batch_seed(ids))


def _learn(mf: ShardedMF, seed):
    user = mf.new_user("u")
    grads = mf.learn_users([user], [0, 0, 0], ["i1", "i7", "i9"], [1.0, 1.0, -0.5], seed=seed)
    return grads, user


def test_a_batch_seed_draws_the_same_negatives_whatever_the_models_generator_did_before():
    a, b = ShardedMF(PARAMS), ShardedMF(PARAMS)
    for mf in (a, b):
        mf.item_rows(ITEMS)
    a.model._rng.random(1000)  # a has drawn before (another batch without a seed, say); b has not
    seed = batch_seed(["e1", "e2", "e3"])
    (ga, ua), (gb, ub) = _learn(a, seed), _learn(b, seed)
    assert ga.item_ids == gb.item_ids and len(ga.item_ids) > 3  # the three items and sampled negatives
    np.testing.assert_array_equal(ga.grad, gb.grad)
    np.testing.assert_array_equal(ua.vector, ub.vector)
    # without the batch's seed, each model's own generator draws: different negatives
    (gc, _), (gd, _) = _learn(a, None), _learn(b, None)
    assert gc.item_ids != gd.item_ids or not np.array_equal(gc.grad, gd.grad)
    (ge, _) = _learn(ShardedMF(PARAMS), batch_seed(["e9"]))
    assert set(ge.item_ids) != set(ga.item_ids) or not np.array_equal(ge.grad, ga.grad)
