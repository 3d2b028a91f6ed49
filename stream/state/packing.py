"""A user's record as one binary value (user-state-v1): what the Redis state keeps per user.

One value per user means one read and one write per user per batch, and the seen items, the
largest part, travel as two arrays instead of a sorted set of strings. Little-endian::

    b"SRU1", flags u8 (1: an MF row, 2: behaviour), u8 0, dim u16, events i64,
    history length u32, seen length u32
    [row]        vec f4 (dim,), bias acc acc_b n f8, updates i64, updated_at f8
    [behaviour]  events dwell (NaN: none yet) skip f8, streak i32, segment and pending lengths
                 u16 u16, then both (UTF-8)
    history      byte lengths u16 (history,), then the item ids (UTF-8), oldest first
    seen         item keys i8 (seen,) sorted, last event times f8 (seen,)

The profile is kept apart (the users agent writes it, not the batch step).

Examples
--------
>>> from stream.state.seen import Seen
>>> rec = UserRecord("u1", history=["a", "b"], seen=Seen.of({"a": 1.0}), events=3)
>>> back = unpack_user("u1", pack_user(rec), dim=4)
>>> back.history, back.events, "a" in back.seen, back.row is None
(['a', 'b'], 3, True, True)
>>> unpack_user("u1", b"SRU1", dim=4)
Traceback (most recent call last):
...
ValueError: user-state-v1 of 'u1': 4 bytes, shorter than its 24-byte head
"""

from __future__ import annotations

import math
import struct

import numpy as np

from stream.models.segments.behaviour import UserBehaviour
from stream.models.sharded import UserState
from stream.state.base import UserRecord
from stream.state.seen import Seen

__all__ = ["pack_user", "unpack_user"]

_MAGIC = b"SRU1"
_HEAD = struct.Struct("<4sBBHqII")
_ROW = struct.Struct("<4dqd")
_BEH = struct.Struct("<3diHH")
_ROW_FLAG, _BEH_FLAG = 1, 2


def pack_user(rec: UserRecord) -> bytes:
    """A record as its stored value (the profile segment is not part of it)."""
    parts = []
    flags = 0
    dim = 0
    row = rec.row
    if row is not None:
        flags |= _ROW_FLAG
        dim = len(row.vector)
        parts += [np.asarray(row.vector, dtype="<f4").tobytes(),
                  _ROW.pack(row.bias, row.acc, row.acc_b, row.n, int(row.version), row.updated_at)]
    b = rec.behaviour
    if b is not None:
        flags |= _BEH_FLAG
        seg, pend = (b.segment or "").encode(), (b.pending or "").encode()
        parts += [_BEH.pack(b.events, math.nan if b.dwell is None else b.dwell, b.skip, int(b.streak), len(seg),
                            len(pend)), seg, pend]
    hist = [h.encode("utf-8") for h in rec.history]
    parts += [np.fromiter(map(len, hist), dtype="<u2", count=len(hist)).tobytes(), *hist]
    keys, ts = rec.seen.arrays()
    parts += [np.asarray(keys, dtype="<i8").tobytes(), np.asarray(ts, dtype="<f8").tobytes()]
    head = _HEAD.pack(_MAGIC, flags, 0, dim, int(rec.events), len(hist), len(keys))
    return b"".join([head, *parts])


def unpack_user(user_id: str, data: bytes, dim: int) -> UserRecord:
    """A stored value back as a record; a row of another factor count than ``dim`` is dropped
    (the model was reconfigured: the row starts again). ValueError if malformed."""
    if len(data) < _HEAD.size:
        raise ValueError(f"user-state-v1 of {user_id!r}: {len(data)} bytes, shorter than its {_HEAD.size}-byte head")
    magic, flags, _, stored_dim, events, n_hist, n_seen = _HEAD.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError(f"user-state-v1 of {user_id!r}: starts with {magic!r}, not {_MAGIC!r}")
    try:
        at = _HEAD.size
        rec = UserRecord(user_id, events=int(events))
        if flags & _ROW_FLAG:
            vec = np.frombuffer(data, dtype="<f4", count=stored_dim, offset=at).astype(np.float32)
            at += 4 * stored_dim
            bias, acc, acc_b, n, updates, updated_at = _ROW.unpack_from(data, at)
            at += _ROW.size
            if stored_dim == dim:
                rec.row = UserState(user_id, vec, bias, acc, acc_b, n, int(updates), updated_at)
        if flags & _BEH_FLAG:
            b_events, dwell, skip, streak, n_seg, n_pend = _BEH.unpack_from(data, at)
            at += _BEH.size
            seg = data[at:at + n_seg].decode("utf-8")
            pend = data[at + n_seg:at + n_seg + n_pend].decode("utf-8")
            at += n_seg + n_pend
            rec.behaviour = UserBehaviour(b_events, None if math.isnan(dwell) else dwell, skip, seg or None,
                                          pend or None, int(streak))
        lengths = np.frombuffer(data, dtype="<u2", count=n_hist, offset=at).tolist()
        at += 2 * n_hist
        history = []
        for length in lengths:
            history.append(data[at:at + length].decode("utf-8"))
            at += length
        rec.history = history
        keys = np.frombuffer(data, dtype="<i8", count=n_seen, offset=at).astype(np.int64)
        ts = np.frombuffer(data, dtype="<f8", count=n_seen, offset=at + 8 * n_seen).astype(np.float64)
        at += 16 * n_seen
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"user-state-v1 of {user_id!r}: malformed ({exc})") from None
    if at != len(data):
        raise ValueError(f"user-state-v1 of {user_id!r}: {len(data)} bytes, {at} expected")
    rec.seen = Seen.from_arrays(keys, ts)
    return rec
