"""The MF model split into a user side and an item side learns what the single model learns."""

from __future__ import annotations

import numpy as np
import pytest

from stream.engine.messages import decode_row, decode_update, encode_row, encode_update
from stream.models.items import ItemRow, ItemUpdate
from stream.models.mf import OnlineMF
from stream.models.sharded import ShardedMF, item_partition

PARAMS = dict(n_factors=8, learning_rate=0.1, l2=1e-3, n_negatives=0, seed=3)


def _batch(rng, n=64, users=12, items=20):
    u = [f"u{x}" for x in rng.integers(0, users, n)]
    i = [f"i{x}" for x in rng.integers(0, items, n)]
    w = rng.choice([1.0, 1.0, 0.5, -0.5], n)
    return u, i, w


def test_user_step_plus_item_apply_equals_one_local_step():
    rng = np.random.default_rng(0)
    whole = OnlineMF(**PARAMS, track_seen=False)
    split = OnlineMF(**PARAMS, track_seen=False)
    for _ in range(5):
        u, i, w = _batch(rng)
        whole.learn_many(u, i, w)
        # the same rows, learned as the worker does it: user half, then the item half at the owner
        nu0, ni0 = split.n_users, split.n_items
        uu, ii, ww = split._index_batch(u, i, w, dtype=np.float32)
        split._grow_users(nu0)
        split._grow_items(ni0)
        rows, grad, ex_b, pos_w = split.user_step(split._P, split._aP, split._abu, uu, ii, ww)
        split.apply_item_gradients(rows, grad, ex_b)
        split.add_popularity(rows[pos_w > 0], pos_w[pos_w > 0])
    np.testing.assert_allclose(split.user_factors, whole.user_factors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split.item_factors, whole.item_factors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split.item_biases, whole.item_biases, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split._pop[: split.n_items], whole._pop[: whole.n_items])


def _wire_row(mf: ShardedMF, r: int) -> ItemRow:
    """An item's MF row through the item-factors message (no co-occurrence part)."""
    row = ItemRow(mf.item_ids[r], mf.item_state(r), 0.0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), 0.0, 0.0)
    return decode_row(encode_row(row))


def _run(workers: int, batches, partitions=4):
    """Users spread over ``workers`` learners, each item owned by one of them, rows broadcast,
    every message through its wire format."""
    mfs = [ShardedMF({**PARAMS, "n_negatives": 4}) for _ in range(workers)]
    users: dict[str, object] = {}
    for b, (u, i, w) in enumerate(batches):
        for k, mf in enumerate(mfs):
            mine = [j for j, uid in enumerate(u) if item_partition(uid, workers) == k] if workers > 1 else list(range(len(u)))
            if not mine:
                continue
            ids = sorted({u[j] for j in mine})
            states = [users.get(x) or mf.new_user(x) for x in ids]
            at = {x: n for n, x in enumerate(ids)}
            grads = mf.learn_users(states, [at[u[j]] for j in mine], [i[j] for j in mine], [w[j] for j in mine],
                                   seed=[b, k])
            users.update({s.user_id: s for s in states})
            for p, part in grads.split(partitions).items():
                owner = mfs[p % workers]
                _, wire = decode_update(encode_update(f"b{b}/{p}", ItemUpdate(part), mf.k))
                for r in owner.apply_gradients(wire.grads, now=1.0).tolist():
                    row = _wire_row(owner, r)
                    for other in mfs:
                        other.load_item(row.mf)
    return mfs, users


def test_one_and_two_learners_give_the_same_item_rows_everywhere():
    rng = np.random.default_rng(1)
    batches = [_batch(rng) for _ in range(6)]
    (one,), _ = _run(1, batches)
    (a, b), users = _run(2, batches)
    assert sorted(a.item_ids) == sorted(b.item_ids) == sorted(one.item_ids)
    for item in one.item_ids:
        ra, rb = a.item_rows([item])[0], b.item_rows([item])[0]
        sa, sb = a.item_state(ra), b.item_state(rb)
        np.testing.assert_array_equal(sa.vector, sb.vector)  # every worker holds the owner's row
        assert (sa.bias, sa.version) == (sb.bias, sb.version) and sa.version > 0
    assert all(s.n > 0 for s in users.values())
    assert sum(s.n for s in users.values()) == sum(int(np.count_nonzero(w)) for _, _, w in batches)


def test_new_ids_start_from_the_same_seeded_vector_in_every_process():
    a, b = ShardedMF(PARAMS), ShardedMF(PARAMS)
    b.item_rows(["other", "x"])
    ra, rb = a.item_rows(["x"])[0], b.item_rows(["x"])[0]
    np.testing.assert_array_equal(a.item_state(ra).vector, b.item_state(rb).vector)
    np.testing.assert_array_equal(a.new_user("ann").vector, b.new_user("ann").vector)
    assert not np.array_equal(a.new_user("ann").vector, a.new_user("bob").vector)
    assert a.item_state(ra).version == 0  # a seeded row is not an owner's row yet


def test_an_older_item_row_never_replaces_a_newer_one_unless_forced():
    mf = ShardedMF(PARAMS)
    owner = ShardedMF(PARAMS)
    grads = owner.learn_users([owner.new_user("u")], [0], ["x"], [1.0])
    r = int(owner.apply_gradients(grads, now=1.0)[0])
    v1 = owner.item_state(r)
    owner.apply_gradients(grads, now=2.0)
    v2 = owner.item_state(r)
    assert (v1.version, v2.version) == (1, 2)
    assert mf.load_item(v2) and not mf.load_item(v1) and not mf.load_item(v2)
    held = mf.item_rows(["x"])[0]
    np.testing.assert_array_equal(mf.item_state(held).vector, v2.vector)
    assert mf.load_item(v1, force=True)  # an owner taking its partition over takes what was committed
    assert mf.item_state(held).version == 1
    np.testing.assert_array_equal(mf.item_state(held).vector, v1.vector)
    with pytest.raises(ValueError, match="has 3 factors: this model has 8"):
        mf.load_item(type(v1)(**{**v1.__dict__, "vector": np.zeros(3, np.float32), "version": 9}))


def test_apply_gradients_returns_the_sorted_rows_it_changed():
    mf = ShardedMF(PARAMS)
    mf.item_rows(["z", "y", "x"])
    grads = mf.learn_users([mf.new_user("u")], [0, 0], ["x", "z"], [1.0, 1.0])
    rows = mf.apply_gradients(grads, now=3.0)
    assert rows.tolist() == sorted(mf.item_rows(["x", "z"]).tolist())
    assert mf.versions().tolist() == [1, 0, 1]
    assert mf.positive_weight().tolist() == [1.0, 0.0, 1.0]
    assert mf.apply_gradients(mf.learn_users([mf.new_user("v")], [], [], []), now=4.0).tolist() == []


def test_learning_makes_the_batch_loss_fall_and_each_user_gets_their_item():
    rng = np.random.default_rng(2)
    mf = ShardedMF({**PARAMS, "learning_rate": 0.3, "n_negatives": 4})
    states = [mf.new_user(f"u{j}") for j in range(4)]
    losses = []
    for n in range(40):
        u = rng.integers(0, 4, 32)
        items = [f"i{x}" for x in u]  # user j likes item j
        grads = mf.learn_users(states, u, items, np.ones(32), seed=[n])
        mf.apply_gradients(grads, now=0.0)
        losses.append(mf.last_loss)
    assert losses[-1] < 0.5 * losses[0], losses
    best = mf.score_many(np.stack([s.vector for s in states])).argmax(axis=1)
    assert [mf.item_ids[r] for r in best.tolist()] == ["i0", "i1", "i2", "i3"]


def test_item_partition_is_stable_and_spreads():
    parts = [item_partition(f"item{j}", 4) for j in range(400)]
    assert parts == [item_partition(f"item{j}", 4) for j in range(400)]
    assert min(parts.count(p) for p in range(4)) > 60


def test_score_many_is_each_users_dot_product_plus_the_item_bias():
    rng = np.random.default_rng(5)
    mf = ShardedMF(PARAMS)
    users = [mf.new_user(f"u{j}") for j in range(6)]
    grads = mf.learn_users(users, rng.integers(0, 6, 50), [f"i{x}" for x in rng.integers(0, 40, 50)], np.ones(50))
    mf.apply_gradients(grads, now=0.0)  # biases are non-zero now
    V = np.stack([s.vector for s in users])
    S = mf.score_many(V)
    assert S.shape == (6, mf.n_items) and S.dtype == np.float32
    rows = [mf.item_state(r) for r in range(mf.n_items)]
    Q = np.stack([s.vector for s in rows])
    b = np.array([s.bias for s in rows], dtype=np.float32)
    assert b.any()
    np.testing.assert_allclose(S, V @ Q.T + b, rtol=1e-5, atol=1e-6)
