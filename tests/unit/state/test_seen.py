"""Seen items (stream/state/seen.py) against a plain dict of the same additions."""

from __future__ import annotations

import numpy as np

from stream.models.items import item_key
from stream.state.seen import Seen


def test_seen_items_follow_a_plain_dict_of_the_same_additions_and_caps():
    rng = np.random.default_rng(2)
    seen, plain = Seen(), {}
    for step in range(300):
        for _ in range(int(rng.integers(1, 6))):
            item, ts = f"i{int(rng.integers(0, 80))}", float(rng.integers(0, 50))
            seen.add(item, ts)
            plain[item] = ts
        if step % 7 == 0:
            copy = seen.copy()
            copy.add("elsewhere", 1.0)  # a copy's additions stay its own
            assert "elsewhere" not in seen or "elsewhere" in plain
        if step % 5 == 0:
            limit = int(rng.integers(10, 60))
            dropped = seen.cap(limit)
            extra = len(plain) - limit
            gone = sorted(plain, key=lambda i: (plain[i], item_key(i)))[:max(extra, 0)]
            for item in gone:
                del plain[item]
            assert dropped == len(gone)
        keys, ts = seen.arrays()
        want = sorted((item_key(i), t) for i, t in plain.items())
        assert keys.tolist() == [k for k, _ in want] and ts.tolist() == [t for _, t in want]
        assert all(i in seen for i in plain) and "never" not in seen
