"""The neighbour table (stream/models/cooccurrence.py) against the rule it implements, written out
plainly per row: counts add up, new neighbours join, and a row past ``max_neighbours`` keeps its
``max_neighbours * 3 // 4`` largest counts (ties: the lower item row)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.models.cooccurrence import NeighbourTable


def _plain_merge(rows: dict[int, dict[int, float]], a, b, w, cap: int | None) -> None:
    """The rule, one row at a time (the test's oracle)."""
    pending: dict[int, dict[int, float]] = {}
    for x, y, v in zip(a.tolist(), b.tolist(), w.tolist()):
        pending.setdefault(x, {})
        pending[x][y] = pending[x].get(y, 0.0) + v
    for x, add in pending.items():
        row = rows.setdefault(x, {})
        for y, v in add.items():
            row[y] = float(np.float32(row.get(y, 0.0) + v))
        if cap is not None and len(row) > cap:
            keep = sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[: cap * 3 // 4]
            rows[x] = dict(keep)


@pytest.mark.parametrize("cap", [None, 8, 200])
def test_batches_of_pairs_give_the_rows_the_rule_gives(cap):
    rng = np.random.default_rng(4)
    n = 60
    table = NeighbourTable(max_neighbours=cap)
    table.grow(n)
    plain: dict[int, dict[int, float]] = {}
    for _ in range(40):
        m = int(rng.integers(1, 300))
        a = rng.integers(0, n, m)
        b = rng.integers(0, n, m)
        w = rng.choice([1.0, 0.5, 0.25], m)
        counts = rng.integers(0, n, 5)
        changed = table.add(a, b, w, counts, np.ones(5))
        _plain_merge(plain, a, b, w, cap)
        assert changed == sorted(set(a.tolist()) | set(counts.tolist()))
    for r in range(n):
        cols, vals = table.row(r)
        want = sorted(plain.get(r, {}).items())
        assert cols.tolist() == [c for c, _ in want], r
        np.testing.assert_array_equal(vals, np.array([v for _, v in want], dtype=np.float32))
        if cap is not None:
            assert len(cols) <= cap


def test_rows_at_the_cap_are_pruned_in_place_not_copied():
    """Once the table is as wide as ``max_neighbours``, a row that passes it is pruned inside the
    arrays it has: a merge does not build new (rows, width) arrays again."""
    table = NeighbourTable(max_neighbours=8)
    table.grow(40)
    table.add(np.zeros(8, dtype=np.int64), np.arange(1, 9), np.ones(8), np.zeros(0), np.zeros(0))
    assert table.width == 8
    cols, vals = table.cols, table.vals
    table.add(np.zeros(5, dtype=np.int64), np.arange(20, 25), np.full(5, 2.0), np.zeros(0), np.zeros(0))
    assert table.cols is cols and table.vals is vals
    assert table.row(0)[0].tolist() == [1, 20, 21, 22, 23, 24]  # 8 * 3 // 4 kept: the larger counts, then the lower row


def test_scores_and_contributors_follow_the_rows():
    table = NeighbourTable(max_neighbours=None)
    table.grow(4)
    table.add(np.array([0, 0, 1]), np.array([2, 3, 3]), np.array([1.0, 2.0, 4.0]), np.array([0, 1, 2, 3]),
              np.ones(4))
    # alpha 0: the score is the count over n_j (all 1 here), weighted by the history's weights
    np.testing.assert_allclose(table.scores(np.array([0, 1]), np.array([1.0, 0.5]), 4, 0.0), [0, 0, 1.0, 4.0])
    assert table.contributors(np.array([0, 1]), np.array([1.0, 0.5]), np.array([2, 3, 1]), 0.0).tolist() == [0, 0, -1]
    assert table.contributors(np.array([0, 1]), np.array([1.0, 1.0]), np.array([3]), 0.0).tolist() == [1]
    cols, sims = table.similar(0, 5, 0.5, 4)
    assert cols.tolist() == [3, 2]


def test_a_copy_takes_a_published_row_whatever_its_length():
    table = NeighbourTable(max_neighbours=10)
    table.set_row(3, np.array([5, 1, 7]), np.array([1.0, 2.0, 3.0], dtype=np.float32), 4.0)
    cols, vals = table.row(3)
    assert cols.tolist() == [1, 5, 7] and vals.tolist() == [2.0, 1.0, 3.0] and table.n[3] == 4.0
    table.set_row(3, np.array([2]), np.array([9.0], dtype=np.float32), 5.0)
    assert table.row(3)[0].tolist() == [2] and len(table) == 4


def test_contributors_of_many_users_are_each_users_own():
    rng = np.random.default_rng(9)
    table = NeighbourTable(max_neighbours=30)
    table.grow(40)
    for _ in range(5):
        a, b = rng.integers(0, 40, 200), rng.integers(0, 40, 200)
        table.add(a, b, rng.choice([1.0, 2.0], 200), rng.integers(0, 40, 20), np.ones(20))
    histories = [rng.choice(40, size=int(rng.integers(1, 8)), replace=False) for _ in range(6)]
    weights = [0.7 ** np.arange(len(h))[::-1] for h in histories]
    targets = np.array([rng.choice(40, size=5, replace=False) for _ in histories])
    targets[2, 3:] = -1
    user = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    many = table.contributors_many(user, np.concatenate(histories), np.concatenate(weights), targets, 40, 0.5)
    for n, (h, w) in enumerate(zip(histories, weights)):
        valid = targets[n] >= 0
        one = table.contributors(h, w, targets[n][valid], 0.5)
        assert many[n][valid].tolist() == one.tolist(), n
        assert (many[n][~valid] == -1).all()


@pytest.mark.parametrize("n_items,history", [(400, 2), (12, 8)])  # fewer neighbour entries than cells, and more
def test_many_users_scores_are_the_formula_written_out(n_items, history):
    rng = np.random.default_rng(7)
    table = NeighbourTable(max_neighbours=None)
    table.grow(n_items)
    m = 4 * n_items
    table.add(rng.integers(0, n_items, m), rng.integers(0, n_items, m), rng.choice([1.0, 0.5], m),
              rng.integers(0, n_items, m), np.ones(m))
    users, alpha = 3, 0.3
    user = np.repeat(np.arange(users), history)
    rows = rng.integers(0, n_items, users * history)
    weights = rng.random(users * history)
    got = table.score_many(user, rows, weights, users, n_items, alpha)
    c = np.maximum(table.n[:n_items], 1.0)
    want = np.zeros((users, n_items))
    for u, r, w in zip(user.tolist(), rows.tolist(), weights.tolist()):
        cols, vals = table.row(r)
        for j, v in zip(cols.tolist(), vals.tolist()):
            want[u, j] += w * v / (c[r] ** alpha * c[j] ** (1.0 - alpha))
    np.testing.assert_allclose(got, want, rtol=1e-9)
