"""Behaviour segmentation's shared state in Redis (see stream/agents/behaviour_segments.py).

    {p}:behaviour                  hash: the clusterer, shared by every worker
                                   n, events, users            updates, events, users counted
                                   sum:<f>, sumsq:<f>          of every update's raw features (standardising)
                                   seeded                      "1" once the centres are set
                                   c<j>:<f>                    centre j, standardised coordinates
    {p}:behaviour:warmup           list: raw feature vectors (JSON) kept to seed the centres
    {p}:user:{user_id}:behaviour   hash: events, dwell, skip (the user's behaviour),
                                   segment, pending, streak (the assignment and a move in waiting)

Counts, sums and centre moves change with HINCRBYFLOAT, so batches of several workers add up.
Everything changes in the batch's atomic apply call (popularity.py), with the event ids it
claims: an event counts once. The centres are seeded once: the call that finds ``seeded``
unset writes them (and the batch's moves after), a call that finds it set adds its moves.
"""

from __future__ import annotations

import json

__all__ = ["APPLY_BEHAVIOUR_LUA", "USER_BEHAVIOUR_FIELDS", "load_behaviour"]

#: A user's behaviour fields, in the order the load script returns them.
USER_BEHAVIOUR_FIELDS = ("events", "dwell", "skip", "segment", "pending", "streak")

# a.behaviour = {"users": [[user_id, field, value, ...], ...], "add": [field, change, ...] (counters),
#                "moves": [field, change, ...] (centres), "warmup": [json, ...],
#                "centres": [field, value, ...] (this batch seeded them: absolute, its moves included) or []}
APPLY_BEHAVIOUR_LUA = """
local b = a.behaviour
if b then
  local model = p .. ':behaviour'
  for _, u in ipairs(b.users) do
    redis.call('HSET', p .. ':user:' .. u[1] .. ':behaviour', unpack(u, 2))
  end
  for i = 1, #b.add, 2 do
    redis.call('HINCRBYFLOAT', model, b.add[i], string.format('%.17g', b.add[i + 1]))
  end
  if #b.centres > 0 then
    -- the first batch to seed wins; another that seeded concurrently drops its centres and moves
    if redis.call('HSETNX', model, 'seeded', '1') == 1 then
      redis.call('HSET', model, unpack(b.centres))
      redis.call('DEL', model .. ':warmup')
    end
  elseif redis.call('HEXISTS', model, 'seeded') == 1 then
    for i = 1, #b.moves, 2 do
      redis.call('HINCRBYFLOAT', model, b.moves[i], string.format('%.17g', b.moves[i + 1]))
    end
  else
    for i = 1, #b.warmup, 1000 do
      redis.call('RPUSH', model .. ':warmup', unpack(b.warmup, i, math.min(i + 999, #b.warmup)))
    end
  end
end
"""


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


async def load_behaviour(redis, keys) -> tuple[dict[str, float], bool, list[list[float]]]:
    """The clusterer's counters and centres (field -> value), whether it is seeded, and the
    warm-up vectors while it is not: one pipeline."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.behaviour)
    pipe.lrange(keys.behaviour_warmup, 0, -1)
    model, warmup = await pipe.execute()
    fields = {_text(f): v for f, v in model.items()}
    seeded = fields.pop("seeded", None) is not None
    return ({f: float(v) for f, v in fields.items()}, seeded,
            [] if seeded else [json.loads(v) for v in warmup])
