"""The item side's update (stream/models/items.py): split by owner, nothing lost, nothing twice."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from stream.engine.messages import encode_row
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable, ItemUpdate, item_key
from stream.models.sharded import item_partition

PARAMS = HybridParams(mf={"n_factors": 4, "n_negatives": 3, "seed": 2})
ITEMS = [f"item-{n}" for n in range(40)]


def _update(seed=0) -> ItemUpdate:
    rng = np.random.default_rng(seed)
    user_side = ItemTable(PARAMS)
    users = [user_side.mf.new_user(f"u{j}") for j in range(5)]
    grads = user_side.mf.learn_users(users, rng.integers(0, 5, 60), list(rng.choice(ITEMS, 60)),
                                     rng.choice([1.0, 0.5, -0.5], 60), seed=[seed])
    u = ItemUpdate(grads)
    a, b = rng.choice(ITEMS, 300), rng.choice(ITEMS, 300)
    u.add_pairs(list(a), list(b), list(rng.random(300)))  # repeats included
    u.add_counts(list(rng.choice(ITEMS, 50)), list(rng.random(50)))
    u.add_popularity(list(rng.choice(ITEMS, 50)), list(rng.random(50)), ref=12.0)
    return u


def _pairs(u: ItemUpdate) -> Counter:
    return Counter(zip(u.names(u.pair_a), u.names(u.pair_b), u.pair_w.tolist()))


def _weighted(u: ItemUpdate, idx, w) -> Counter:
    return Counter(zip(u.names(idx), w.tolist()))


@pytest.mark.parametrize("partitions", [1, 2, 4, 7])
def test_split_keeps_every_pair_count_and_gradient_exactly_once_with_its_owner(partitions):
    u = _update()
    parts = u.split(partitions)
    assert parts and all(parts.values()) and set(parts) <= set(range(partitions))
    pairs, counts, pops, grads = Counter(), Counter(), Counter(), []
    for p, part in parts.items():
        assert set(part.ids) <= set(u.ids) and part.pop_ref == 12.0  # a part names the items it refers to
        used = set(part.names(np.concatenate([part.pop_idx, part.count_idx, part.pair_a, part.pair_b])))
        assert used == set(part.ids)
        assert all(item_partition(a, partitions) == p for a in part.names(part.pair_a))  # a row's owner
        assert all(item_partition(i, partitions) == p for i in part.names(part.count_idx))
        assert all(item_partition(i, partitions) == p for i in part.names(part.pop_idx))
        assert all(item_partition(i, partitions) == p for i in part.grads.item_ids)
        pairs += _pairs(part)
        counts += _weighted(part, part.count_idx, part.count_w)
        pops += _weighted(part, part.pop_idx, part.pop_w)
        grads += [(i, row.tolist()) for i, row in zip(part.grads.item_ids, part.grads.grad)]
    assert pairs == _pairs(u) and sum(pairs.values()) == 300
    assert counts == _weighted(u, u.count_idx, u.count_w)
    assert pops == _weighted(u, u.pop_idx, u.pop_w)
    assert sorted(grads) == sorted((i, row.tolist()) for i, row in zip(u.grads.item_ids, u.grads.grad))


def test_owners_applying_their_parts_make_the_rows_one_owner_makes_of_the_whole():
    u = _update(seed=3)
    whole = ItemTable(PARAMS)
    whole.rows(ITEMS)
    whole.apply(u, now=1.0)
    split = ItemTable(PARAMS)
    split.rows(ITEMS)
    for _, part in sorted(u.split(4).items(), reverse=True):  # in any order
        split.apply(part, now=1.0)
    assert [encode_row(whole.row(r)) for r in range(whole.n_items)] == \
        [encode_row(split.row(r)) for r in range(split.n_items)]


def test_an_empty_update_splits_into_nothing():
    empty = ItemUpdate.empty(4)
    assert not empty and empty.split(4) == {} and empty.split(1) == {}


def test_a_neighbour_known_only_by_key_is_unnamed_until_its_own_row_or_event_names_it():
    owner = ItemTable(PARAMS)
    update = ItemUpdate.empty(4)
    update.add_pairs(["a", "b"], ["b", "a"], [1.0, 1.0])
    update.add_counts(["a", "b"], [1.0, 1.0])
    owner.apply(update, now=1.0)
    row_a, row_b = (owner.row(owner.get(i)) for i in ("a", "b"))

    copy = ItemTable(PARAMS)
    copy.load_row(row_a)  # names b by key only
    b = int(copy.rows_of_keys(row_a.neighbour_keys)[0])
    assert copy.n_items == 2 and copy.get("b") == -1 and b in copy.unnamed
    assert copy.named().tolist() == [True, False]
    assert copy.mf.model._draw[b] == 0.0  # never a sampled negative while unnamed
    copy.load_row(row_b)  # its own row: the same row takes its id
    assert copy.get("b") == b and not copy.unnamed and copy.named() is None
    assert copy.neighbours(copy.get("a"))[0] == ["b"] and copy.neighbours(b)[0] == ["a"]

    other = ItemTable(PARAMS)
    other.load_row(row_a)
    assert other.rows(["b"]).tolist() == [1] and not other.unnamed  # an event of b names it too
    assert other.item_ids == ["a", "b"]


def test_every_row_is_found_by_its_key_however_the_rows_arrived():
    table = ItemTable(PARAMS)
    ids = [f"it-{n}" for n in range(5000)]
    for start in range(0, 5000, 37):  # many small arrivals: the recent index fills and folds into the main one
        table.rows(ids[start:start + 37])
    keys = np.array([item_key(i) for i in ids])
    assert table.rows_of_keys(keys, create=False).tolist() == list(range(5000))
    assert table.rows_of_keys(np.array([item_key("nope")]), create=False).tolist() == [-1]
    assert table.n_items == 5000 and not table.unnamed


def test_an_unnamed_row_named_later_starts_where_every_other_process_starts_that_item():
    """Guards a review finding: the placeholder's first vector came from the placeholder's id."""
    owner = ItemTable(PARAMS)
    update = ItemUpdate.empty(4)
    update.add_pairs(["a"], ["b"], [1.0])
    update.add_counts(["a"], [1.0])
    owner.apply(update, now=1.0)
    copy = ItemTable(PARAMS)
    copy.load_row(owner.row(owner.get("a")))  # b known by key only
    [b] = copy.rows(["b"])  # an event names it
    fresh = ItemTable(PARAMS)
    [b2] = fresh.rows(["b"])
    np.testing.assert_array_equal(copy.mf.model._Q[b], fresh.mf.model._Q[b2])


def test_an_item_whose_id_looks_like_a_placeholder_keeps_its_own_row():
    """Guards a review finding: an event's item id equal to a placeholder id made rows_of_keys
    reuse that item's row and shifted the key index by one."""
    table = ItemTable(PARAMS)
    key = item_key("y")
    tricky = f"{ItemTable.UNNAMED}{key:016x}"
    table.rows([tricky, "x"])
    [placeholder] = table.rows_of_keys(np.array([key]))
    assert placeholder == 2 and table.item_ids[:2] == [tricky, "x"] and placeholder in table.unnamed
    keys = np.array([item_key(tricky), item_key("x"), key])
    assert table.rows_of_keys(keys, create=False).tolist() == [0, 1, 2]
    assert table.rows(["y"]).tolist() == [2] and not table.unnamed
