"""Users' model rows in Redis: the durable, partition-owned user side of the MF model.

A user's row lives in the embedding hash ``{prefix}:emb:user:{user_id}`` (see
embeddings.py: ``vec``, ``dim``, ``bias``, ``version``, ``updated_at``, so any
embedding reader can use it) with three more fields the learner needs to go on:

    acc, acc_b   Adagrad accumulators of the factor row and of the bias (text floats)
    n            events learned from (text float)
    updates      micro-batches that changed the row (text int)

Only the worker that owns the user's partition writes the row, and it writes it in the
same Redis transaction that claims the batch's event ids (see the ingest pipeline), so
after a crash a row and the dedupe keys agree: a redelivered event either finds its id
claimed and the row containing its effect, or neither.
"""

from __future__ import annotations

import numpy as np

from stream.models.sharded import UserState
from stream.store.embeddings import pack, unpack

__all__ = ["USER_FIELDS", "parse_user", "user_mapping", "MODEL_VERSION", "LOAD_BATCH_LUA"]

#: The model version written beside every vector.
MODEL_VERSION = "online-mf-v1"

USER_FIELDS = ("vec", "dim", "bias", "acc", "acc_b", "n", "updates", "updated_at")


def parse_user(user_id: str, values: list[bytes | None], dim: int) -> UserState | None:
    """A row read with ``HMGET key *USER_FIELDS``; None when the user has none (or another
    factor count: the model was reconfigured, so the row starts again)."""
    if values[0] is None or values[1] is None or int(values[1]) != dim:
        return None
    vec, _, bias, acc, acc_b, n, version, updated_at = values  # in USER_FIELDS order
    return UserState(user_id, unpack(vec, dim), float(bias or 0.0), float(acc or 0.0), float(acc_b or 0.0),
                     float(n or 0.0), int(float(version or 0)), float(updated_at or 0.0))


def user_mapping(state: UserState) -> dict[str, bytes | str]:
    """The row as hash fields (``vec`` the packed vector, the rest text)."""
    return {
        "vec": pack(np.asarray(state.vector, dtype=np.float32)),
        "dim": str(len(state.vector)),
        "bias": repr(float(state.bias)),
        "acc": repr(float(state.acc)),
        "acc_b": repr(float(state.acc_b)),
        "n": repr(float(state.n)),
        "updates": str(state.version),
        "version": MODEL_VERSION,
        "updated_at": repr(float(state.updated_at)),
    }


# What a micro-batch needs before learning, in one call (keys as stream/store/keys.py lays them out).
# ARGV[1]: JSON {"prefix", "fields": USER_FIELDS, "events": [event_id, ...], "users": [user_id, ...],
#                "behaviour": the user behaviour fields (behaviour_state.py) or []}
# Returns {claimed: one "1"/"0" per event, rows: HMGET of the fields per user,
#          seen: the seen items per user, segments: the profile's _segment per user (or false),
#          behaviour: HMGET of the behaviour fields per user (when asked)}
LOAD_BATCH_LUA = """
local a = cjson.decode(ARGV[1])
local p = a.prefix
local claimed = {}
for n, id in ipairs(a.events) do
  claimed[n] = redis.call('EXISTS', p .. ':dedupe:' .. id) == 1 and '1' or '0'
end
local rows, seen, segments, behaviour = {}, {}, {}, {}
for j, u in ipairs(a.users) do
  rows[j] = redis.call('HMGET', p .. ':emb:user:' .. u, unpack(a.fields))
  seen[j] = redis.call('ZRANGE', p .. ':user:' .. u .. ':seen', 0, -1)
  segments[j] = redis.call('HGET', p .. ':user:' .. u .. ':profile', '_segment')
  if #a.behaviour > 0 then
    behaviour[j] = redis.call('HMGET', p .. ':user:' .. u .. ':behaviour', unpack(a.behaviour))
  end
end
return {table.concat(claimed), rows, seen, segments, behaviour}
"""
