"""A user's record as one binary value (stream/state/packing.py): round trips and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from stream.models.segments.behaviour import UserBehaviour
from stream.models.sharded import UserState
from stream.state.base import UserRecord
from stream.state.packing import pack_user, unpack_user
from stream.state.seen import Seen


def record(history: list[str]) -> UserRecord:
    rng = np.random.default_rng(7)
    row = UserState("u1", rng.random(8).astype(np.float32), 0.1, 0.2, 0.3, 5.0, 3, 1.5)
    seen = Seen.of({f"i{n}": float(n) for n in range(12)})
    return UserRecord("u1", row, list(history), seen, 40, None, UserBehaviour(10, 2.0, 0.1, "behaviour-1", None, 2))


HISTORIES = {
    "ascii": [f"item-{n}" for n in range(30)],
    "non-ascii": ["é", "a", "日本", "𝄞x", "plain"],
    "one": ["a"],
    "none": [],
    "longest ids": ["x" * 128, "é" * 128],
    "ids with separators": ["a\x00b", "", "c,d", "\n"],
}


@pytest.mark.parametrize("history", HISTORIES.values(), ids=HISTORIES.keys())
def test_a_record_comes_back_as_it_was_stored(history):
    rec = record(history)
    back = unpack_user("u1", pack_user(rec), dim=8)

    assert back.history == history and all(type(h) is str for h in back.history)
    assert back.events == rec.events and back.seen == rec.seen
    assert np.array_equal(back.row.vector, rec.row.vector) and back.row.updated_at == rec.row.updated_at
    assert back.behaviour == rec.behaviour


@pytest.mark.parametrize("history", [HISTORIES["ascii"], HISTORIES["non-ascii"]], ids=["ascii", "non-ascii"])
def test_every_truncation_is_refused_as_malformed(history):
    data = pack_user(record(history))
    for cut in range(len(data)):
        with pytest.raises(ValueError, match="user-state-v1 of 'u1'"):
            unpack_user("u1", data[:cut], dim=8)


def test_an_id_that_is_not_utf8_is_refused():
    data = bytearray(pack_user(record(["ab", "cd"])))
    at = bytes(data).index(b"abcd")
    data[at] = 0xFF
    with pytest.raises(ValueError, match="malformed"):
        unpack_user("u1", bytes(data), dim=8)
