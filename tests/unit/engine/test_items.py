"""Item updates leaving the user side (stream/engine/items.py): their ids and their outbox entries."""

from __future__ import annotations

import re

import numpy as np

from stream.engine.items import entry_id, outbox_entries
from stream.engine.messages import decode_update
from stream.models.items import ItemUpdate
from stream.models.sharded import item_partition


def test_entry_id_is_stable_and_names_the_events_and_the_partition():
    ids = ["e1", "e2", "e3"]
    assert entry_id(ids, 2) == entry_id(list(ids), 2)
    assert re.fullmatch(r"[0-9a-f]{24}/2", entry_id(ids, 2))
    others = {entry_id(ids, 3), entry_id(["e1", "e2"], 2), entry_id(["e3", "e2", "e1"], 2), entry_id(["e1e2", "e3"], 2)}
    assert entry_id(ids, 2) not in others and len(others) == 4


def test_outbox_entries_are_one_per_owner_with_their_ids_and_payloads():
    u = ItemUpdate.empty(2)
    items = [f"i{n}" for n in range(12)]
    u.add_pairs(items, items[1:] + items[:1], [1.0] * 12)
    u.add_counts(items, [1.0] * 12)
    event_ids = ["e1", "e2"]
    entries = outbox_entries(u, event_ids, 3, 2)
    owners = sorted({item_partition(i, 3) for i in items})
    assert [e.partition for e in entries] == owners
    assert [e.entry_id for e in entries] == [entry_id(event_ids, p) for p in owners]
    total = 0
    for e in entries:
        eid, decoded = decode_update(e.payload)  # the bytes are the message the owner reads
        assert eid == e.entry_id
        assert all(item_partition(a, 3) == e.partition for a in decoded.names(decoded.pair_a))
        np.testing.assert_array_equal(decoded.pair_w, e.update.pair_w)
        total += len(decoded.pair_a)
    assert total == 12
    assert outbox_entries(ItemUpdate.empty(2), event_ids, 3, 2) == []
