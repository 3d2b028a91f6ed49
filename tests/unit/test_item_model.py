"""The item side without Kafka or Redis: messages round trips, owners apply each update once,
copies take the owners' rows, malformed messages are refused with a clear ValueError."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

from stream.engine.items import ItemCopy, ItemOwner
from stream.models.items import item_key
from stream.engine.messages import (ItemInit, decode_row, decode_update, encode_init, encode_row, encode_update)
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable, ItemUpdate
from stream.state.memory import MemoryState
from tests.helpers import user_side_update

PARAMS = HybridParams(mf={"n_factors": 4, "learning_rate": 0.2, "n_negatives": 0, "seed": 1})
K = 4


def _update(items=("a", "b"), user="u") -> ItemUpdate:
    return user_side_update(PARAMS, items, user, popularity=True)


def _owner(state=None, clock=lambda: 7.0):
    table = ItemTable(PARAMS)
    return ItemOwner(table, state if state is not None else MemoryState(), clock=clock), table


def _snapshot(table: ItemTable) -> dict:
    return {table.item_ids[r]: encode_row(table.row(r)) for r in range(table.n_items)}


def test_an_update_round_trips_through_its_message():
    u = _update(("a", "b", "c"))
    eid, back = decode_update(encode_update("e1/0", u, K))
    assert eid == "e1/0"
    assert back.grads.item_ids == u.grads.item_ids
    np.testing.assert_array_equal(back.grads.grad, u.grads.grad)
    np.testing.assert_array_equal(back.grads.ex_b, u.grads.ex_b)
    np.testing.assert_array_equal(back.grads.pos_w, u.grads.pos_w)
    for part in ("pop_idx", "count_idx", "pair_a", "pair_b"):
        assert back.names(getattr(back, part)) == u.names(getattr(u, part)), part
    for part in ("pop_w", "count_w", "pair_w"):
        np.testing.assert_array_equal(getattr(back, part), getattr(u, part))
    assert back.pop_ref == 5.0
    assert decode_update(encode_init("new", ["jazz", "blues"])) == ("init:new", ItemInit("new", ["jazz", "blues"]))


def test_a_row_round_trips_through_its_message():
    owner, table = _owner()
    rows = asyncio.run(owner.apply(0, [("e1/0", _update(("a", "b", "c")))]))
    assert sorted(r.item_id for r in rows) == ["a", "b", "c"]
    for row in rows:
        back = decode_row(encode_row(row))
        assert (back.item_id, back.n, back.popularity, back.popularity_ref) == \
            (row.item_id, row.n, row.popularity, row.popularity_ref)
        np.testing.assert_array_equal(back.neighbour_keys, row.neighbour_keys)
        np.testing.assert_array_equal(back.counts, row.counts)
        np.testing.assert_array_equal(back.mf.vector, row.mf.vector)
        assert (back.mf.bias, back.mf.acc, back.mf.acc_b, back.mf.pop, back.mf.version, back.mf.updated_at) == \
            (row.mf.bias, row.mf.acc, row.mf.acc_b, row.mf.pop, row.mf.version, row.mf.updated_at)
    b = next(r for r in rows if r.item_id == "b")
    assert sorted(b.neighbour_keys.tolist()) == sorted([item_key("a"), item_key("c")])
    assert b.counts.tolist() == [1.0, 1.0] and b.popularity == 2.0
    assert b.mf.version == 1 and b.mf.updated_at == 7.0


def test_an_owner_drops_an_update_id_it_applied_before():
    state = MemoryState()
    owner, table = _owner(state)
    update = _update()
    first = asyncio.run(owner.apply(0, [("e1/0", update), ("e1/0", update)]))  # a resend in the same batch
    assert sorted(r.item_id for r in first) == ["a", "b"] and (owner.applied, owner.dropped) == (1, 1)
    after_once = _snapshot(table)
    assert asyncio.run(owner.apply(0, [("e1/0", update)])) == []  # delivered twice: nothing changes
    assert _snapshot(table) == after_once and (owner.applied, owner.dropped) == (1, 2)
    # a new owner of the partition (a restart, a rebalance) takes its committed rows and still drops it
    again, fresh_table = _owner(state)
    rows = asyncio.run(again.apply(0, [("e1/0", update)]))
    assert sorted(r.item_id for r in rows) == ["a", "b"]  # the take-over republishes the partition's rows
    assert _snapshot(fresh_table) == after_once and (again.applied, again.dropped) == (0, 1)
    # another update is applied on top
    asyncio.run(again.apply(0, [("e2/0", _update(("b", "c"), user="v"))]))
    assert again.applied == 1 and fresh_table.row(fresh_table.get("b")).mf.version == 2


def test_a_copy_takes_the_owners_rows_and_skips_bad_and_old_messages():
    owner, table = _owner()
    rows = asyncio.run(owner.apply(0, [("e1/0", _update())]))
    copy_table = ItemTable(PARAMS)
    reader = ItemCopy(copy_table)
    messages = [encode_row(r) for r in rows]
    taken = reader.apply(messages + [b"{}", b"not json", None])
    assert sorted(r.item_id for r in taken) == ["a", "b"]
    assert (reader.read, reader.applied, reader.invalid) == (2, 2, 2)
    assert _snapshot(copy_table) == _snapshot(table)
    assert reader.apply(messages) == []  # old news: not newer than what the copy holds
    assert (reader.read, reader.applied) == (4, 2)
    other_k = ItemTable(HybridParams(mf={"n_factors": 3, "seed": 1}))
    assert ItemCopy(other_k).apply(messages) == []  # rows of another factor count are refused, not taken


def test_a_new_item_starts_from_its_categories_once():
    owner, table = _owner()
    asyncio.run(owner.apply(0, [("e1/0", _update())]))
    asyncio.run(owner.apply(0, [(ItemInit("a", ["jazz"]).entry_id, ItemInit("a", ["jazz"])),
                                (ItemInit("b", ["jazz"]).entry_id, ItemInit("b", ["jazz"]))]))
    assert owner.initialised == 0  # a and b learned before their metadata came: never re-initialised
    rows = asyncio.run(owner.apply(0, [("init:new", ItemInit("new", ["jazz"]))]))
    assert [r.item_id for r in rows] == ["new"] and owner.initialised == 1
    mean = np.mean([table.row(table.get(i)).mf.vector for i in ("a", "b")], axis=0)
    np.testing.assert_allclose(rows[0].mf.vector, mean, rtol=1e-6)
    assert asyncio.run(owner.apply(0, [("init:new", ItemInit("new", ["jazz"]))])) == []  # once


def _b64(array, dtype) -> str:
    return base64.b64encode(np.asarray(array, dtype=dtype).tobytes()).decode()


@pytest.mark.parametrize("data, message", [
    (b"not json", "item-updates message: not JSON"),
    (b"[1, 2]", "\"schema\" item-update-v2 or item-init-v1 expected, got None"),
    (b'{"schema": "item-update-v1"}', "expected, got 'item-update-v1'"),
    (b'{"schema": "item-update-v2", "id": 3, "dim": 2, "ids": []}', "id must be a string, dim an integer"),
    (json.dumps({"schema": "item-update-v2", "id": "e", "dim": 2, "ids": ["a"],
                 "counts": {"items": _b64([0], "<i4"), "w": "AAAA"}}).encode(), "counts.w has 3 bytes, must have 8"),
    (json.dumps({"schema": "item-update-v2", "id": "e", "dim": 2, "ids": ["a"],
                 "pairs": {"a": _b64([0], "<i4"), "b": _b64([5], "<i4"), "w": _b64([1.0], "<f8")}}).encode(),
     "pairs.b must index the ids"),
    (json.dumps({"schema": "item-update-v2", "id": "e", "dim": 2, "ids": ["a"],
                 "mf": {"items": _b64([0], "<i4"), "grad": "!!", "ex_b": "", "pos_w": ""}}).encode(),
     "mf.grad is not base64"),
    (json.dumps({"schema": "item-update-v2", "id": "e", "dim": 2, "ids": ["a"], "pop": [1]}).encode(),
     "pop must be an object"),
    (b'{"schema": "item-init-v1", "item_id": "x", "categories": "jazz"}', "categories a list of strings"),
])
def test_a_malformed_update_raises_a_clear_value_error(data, message):
    with pytest.raises(ValueError) as info:
        decode_update(data)
    assert message in str(info.value)


def test_a_malformed_row_raises_a_clear_value_error():
    owner, _ = _owner()
    row = asyncio.run(owner.apply(0, [("e1/0", _update())]))[0]
    data = encode_row(row)
    with pytest.raises(ValueError, match="b'SRR3' expected"):
        decode_row(b"{")
    with pytest.raises(ValueError, match="b'SRR3' expected"):
        decode_row(b"SRR2" + data[4:])
    with pytest.raises(ValueError, match=f"{len(data) - 1} bytes, must be {len(data)}"):
        decode_row(data[:-1])
    with pytest.raises(ValueError, match="must be"):
        decode_row(data + b"\x00")
    bad_id = bytearray(data)
    bad_id[84] = 0xFF  # the id's first byte (after the 84-byte head)
    with pytest.raises(ValueError, match="not UTF-8"):
        decode_row(bytes(bad_id))

def test_a_malformed_binary_update_raises_a_clear_value_error():
    u = _update(("a", "b", "c"))
    data = encode_update("e1/0", u, 4)
    assert decode_update(data)[0] == "e1/0"
    with pytest.raises(ValueError, match="bytes, must be"):
        decode_update(data[:-1])
    with pytest.raises(ValueError, match="shorter than its head"):
        decode_update(data[:10])
    bad_ids = data.replace(b'["', b'[1,"', 1)  # an id that is not a string (the length field now lies too)
    with pytest.raises(ValueError):
        decode_update(bad_ids)
    # a pair that points past the ids
    back = decode_update(data)[1]
    back.pair_b = back.pair_b.copy()
    back.pair_b[0] = len(back.ids) + 5
    with pytest.raises(ValueError, match="pairs.b must index the ids"):
        decode_update(encode_update("e1/0", back, 4))


def test_binary_update_ids_must_be_a_list_of_strings():
    """Guards a review finding: ids that were a JSON object raised KeyError, a string was taken
    as a list of its characters."""
    data = encode_update("e1/0", _update(("a", "b")), 4)
    head_len = 36  # the head: magic, dim, two lengths, five counts, the reference time
    for blob in (b'{"a":1}', b'"ab"'):
        eid_len, ids_len = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:12], "little")
        start = head_len + eid_len
        bad = data[:8] + len(blob).to_bytes(4, "little") + data[12:start] + blob + data[start + ids_len:]
        with pytest.raises(ValueError, match="ids"):
            decode_update(bad)


def test_an_owner_refuses_offsets_that_do_not_match_its_updates():
    owner, _ = _owner()
    with pytest.raises(ValueError, match="2 offsets for 1 updates"):
        asyncio.run(owner.apply(0, [("e1/0", _update())], [1, 2]))
