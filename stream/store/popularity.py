"""The foundation's baseline model: segment popularity with exponential time decay, in Redis.

Each applied event adds ``weight * exp((ts - ref) / tau)`` to the item's score in
its segment's sorted set (and in the global one). Growing the increment forward in
event time is the same as decaying every older score, without touching them; when
the exponent passes 50 the set is rescaled and ``ref`` moved, so nothing overflows.

Applying a micro-batch is one Lua script call, atomic in Redis: for each event it
first claims the event's dedupe key (``SET NX EX``), so a redelivered or retried event
changes nothing; the same call writes the batch's user model rows. One call, rather than
one per event, because packing and parsing commands in redis-py was most of a batch's time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from stream.contract import Event
from stream.signals import marks_seen, signal_weight
from stream.store.keys import Keys
from stream.store.behaviour_state import APPLY_BEHAVIOUR_LUA
from stream.store.segment_state import APPLY_SEGMENTS_LUA, GUARD_LUA, GuardResult, SegmentUpdates
from stream.store.userstate import user_mapping

__all__ = ["PopularityStore", "APPLY_BATCH_LUA", "GLOBAL_SEGMENT", "Applied"]

GLOBAL_SEGMENT = "_global"

# One call applies a whole micro-batch, atomically (a script runs alone in Redis).
# ARGV[1]: JSON {"prefix", "ttl", "tau", "hmax",
#                "events": [[event_id, segment, ts, weight, item_id, user_id, type, marks_seen], ...],
#                "rows": [[user_id, field, value, field, value, ...], ...],   (all but the vector)
#                "layers", "guards": the segment models' changes (segment_state.py),
#                "behaviour": the behaviour clusterer's and users' changes (behaviour_state.py)}
# ARGV[1 + j]: the float32 bytes of rows[j]'s vector (binary: not in the JSON).
# Returns {one character per event: "1" applied, "0" a duplicate (its event_id was claimed
# before); the guards the batch's trials changed}.
# Keys are built here from the prefix, as stream/store/keys.py lays them out. (They are not
# declared in KEYS, so this needs one Redis, not a Cluster: docs/ARCHITECTURE.md.)
APPLY_BATCH_LUA = GUARD_LUA + """
local a = cjson.decode(ARGV[1])
local p, ttl, tau, hmax = a.prefix, a.ttl, a.tau, a.hmax
local refs = {}
local function bump(seg, ts, w, item)
  local zkey, refkey = p .. ':pop:' .. seg, p .. ':popref:' .. seg
  local ref = refs[seg]
  if ref == nil then
    ref = redis.call('GET', refkey)
    if not ref then
      redis.call('SET', refkey, string.format('%.17g', ts))
      ref = ts
    else
      ref = tonumber(ref)
    end
  end
  local x = (ts - ref) / tau
  if x > 50 then
    local factor = math.exp(-x)
    local all = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      redis.call('ZADD', zkey, tonumber(all[i + 1]) * factor, all[i])
    end
    redis.call('SET', refkey, string.format('%.17g', ts))
    ref = ts
    x = 0
  end
  refs[seg] = ref
  redis.call('ZINCRBY', zkey, w * math.exp(x), item)
end
local out, counts, users, items = {}, {}, {}, {}
local dups = 0
for n, e in ipairs(a.events) do
  if redis.call('SET', p .. ':dedupe:' .. e[1], '1', 'NX', 'EX', ttl) then
    out[n] = '1'
    local ts, w, item, user = e[3], e[4], e[5], e[6]
    if w ~= 0 then
      bump(e[2], ts, w, item)
      bump('_global', ts, w, item)
    end
    if e[8] then
      local seen = p .. ':user:' .. user .. ':seen'
      redis.call('ZADD', seen, ts, item)
      local count = redis.call('ZCARD', seen)
      if count > hmax then
        redis.call('ZREMRANGEBYRANK', seen, 0, count - hmax - 1)
      end
    end
    counts[e[7]] = (counts[e[7]] or 0) + 1
    users[#users + 1] = user
    items[#items + 1] = item
  else
    out[n] = '0'
    dups = dups + 1
  end
end
local stats = p .. ':stats'
for t, c in pairs(counts) do
  redis.call('HINCRBY', stats, 'events_total:' .. t, c)
end
if dups > 0 then
  redis.call('HINCRBY', stats, 'duplicates_total', dups)
end
for i = 1, #users, 1000 do  -- unpack() has a stack limit: chunks
  local j = math.min(i + 999, #users)
  redis.call('PFADD', p .. ':hll:users', unpack(users, i, j))
  redis.call('PFADD', p .. ':hll:items', unpack(items, i, j))
end
for j, r in ipairs(a.rows) do
  redis.call('HSET', p .. ':emb:user:' .. r[1], 'vec', ARGV[1 + j], unpack(r, 2))
end
""" + APPLY_SEGMENTS_LUA + APPLY_BEHAVIOUR_LUA + """
return {table.concat(out), guarded}
"""


@dataclass(frozen=True)
class Applied:
    event: Event
    segment: str
    fresh: bool  # False: a duplicate event_id, nothing changed


class PopularityStore:
    """Segment popularity + per-user seen items over an async redis-py client."""

    def __init__(self, redis, keys: Keys, *, half_life_seconds: float, dedupe_ttl_seconds: int, history_max: int):
        self.redis = redis
        self.keys = keys
        self.half_life_seconds = half_life_seconds
        self.dedupe_ttl_seconds = dedupe_ttl_seconds
        self.history_max = history_max
        self._tau = half_life_seconds / math.log(2.0)
        # redis-py's script object runs EVALSHA and loads the script again after a NOSCRIPT
        # (a Redis restarted without its script cache); nothing ran then, so that is safe.
        self._apply = redis.register_script(APPLY_BATCH_LUA)

    async def segments_of(self, user_ids: list[str], default: str) -> dict[str, str]:
        pipe = self.redis.pipeline(transaction=False)
        for uid in user_ids:
            pipe.hget(self.keys.profile(uid), "_segment")
        values = await pipe.execute()
        return {uid: (v.decode() if v else default) for uid, v in zip(user_ids, values)}

    async def apply(self, events: list[Event], segments: dict[str, str], rows=(),
                    updates: SegmentUpdates | None = None, behaviour=None) -> list[Applied]:
        """Apply a micro-batch in one atomic script call; returns what each event did.

        ``rows`` (:class:`stream.models.sharded.UserState`) are the batch's new user model rows,
        ``updates`` the segment models' changes and ``behaviour`` the behaviour segments'
        (:class:`stream.agents.behaviour_segments.BehaviourUpdates`), written in the same call: the event ids
        are claimed and the rows and changes written together, or nothing is. The guards'
        new states go to ``updates.results``.
        """
        if not events:
            return []
        raw, guarded = await self._apply(args=self._batch_args(events, segments, rows, updates, behaviour))
        if updates is not None:
            updates.results = [GuardResult.parse(g) for g in guarded]
        flags = raw.decode() if isinstance(raw, bytes) else str(raw)
        if len(flags) != len(events):
            raise RuntimeError(f"store answered {len(flags)} results for {len(events)} events")
        return [Applied(ev, segments[ev.user_id], f == "1") for ev, f in zip(events, flags)]

    def _batch_args(self, events: list[Event], segments: dict[str, str], rows,
                    updates: SegmentUpdates | None = None, behaviour=None) -> list:
        body = {
            "prefix": self.keys.prefix, "ttl": self.dedupe_ttl_seconds, "tau": self._tau, "hmax": self.history_max,
            "events": [[ev.event_id, segments[ev.user_id], ev.ts, signal_weight(ev), ev.item_id, ev.user_id, ev.type,
                        marks_seen(ev)] for ev in events],
            "rows": [],
            **(updates.script_args() if updates is not None else {}),
            **(behaviour.script_args() if behaviour is not None else {}),
        }
        vectors = []
        for r in rows:
            mapping = user_mapping(r)
            vectors.append(mapping.pop("vec"))
            body["rows"].append([r.user_id, *(x for pair in mapping.items() for x in pair)])
        return [json.dumps(body, separators=(",", ":")), *vectors]

    async def probe(self, events: list[Event]) -> tuple[list[bool], dict[str, int], list[bool]]:
        """Before applying: which events were applied already, how many items each user has
        seen, and whether each event's item is among them."""
        users = sorted({ev.user_id for ev in events})
        pipe = self.redis.pipeline(transaction=False)
        for ev in events:
            pipe.exists(self.keys.dedupe(ev.event_id))
        for ev in events:
            pipe.zscore(self.keys.seen(ev.user_id), ev.item_id)
        for uid in users:
            pipe.zcard(self.keys.seen(uid))
        out = await pipe.execute()
        n = len(events)
        return ([bool(x) for x in out[:n]], dict(zip(users, (int(c) for c in out[2 * n:]))),
                [x is not None for x in out[n : 2 * n]])

    async def top_k(self, user_ids: list[str], segments: dict[str, str], k: int) -> dict[str, list[tuple[str, float]]]:
        """Each user's top-k of their segment's popularity, minus the items they have seen.

        Falls back to the global ranking when the segment has too few unseen items.
        """
        if not user_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for uid in user_ids:
            pipe.zcard(self.keys.seen(uid))
        seen_counts = await pipe.execute()
        # The candidates must outnumber what a user may have seen, or a heavy user gets a short list.
        need = {uid: k + int(n) for uid, n in zip(user_ids, seen_counts)}
        wanted: dict[str, int] = {}
        for uid in user_ids:
            for seg in (segments[uid], GLOBAL_SEGMENT):
                wanted[seg] = max(wanted.get(seg, 0), need[uid])
        pipe = self.redis.pipeline(transaction=False)
        order = list(wanted)
        for seg in order:
            pipe.zrevrange(self.keys.pop(seg), 0, wanted[seg] - 1, withscores=True)
        ranked = {seg: [(m.decode(), float(s)) for m, s in rows] for seg, rows in zip(order, await pipe.execute())}

        pipe = self.redis.pipeline(transaction=False)
        cand: dict[str, list[tuple[str, float]]] = {}
        for uid in user_ids:
            seen_seg = ranked[segments[uid]]
            merged = list(seen_seg)
            if len(merged) < need[uid]:
                have = {m for m, _ in merged}
                merged += [(m, 0.0) for m, _ in ranked[GLOBAL_SEGMENT] if m not in have]
            cand[uid] = merged
            if merged:
                pipe.zmscore(self.keys.seen(uid), [m for m, _ in merged])
            else:
                pipe.exists(self.keys.seen(uid))  # keeps results aligned
        seen_scores = await pipe.execute()
        out: dict[str, list[tuple[str, float]]] = {}
        for uid, scores in zip(user_ids, seen_scores):
            items = cand[uid]
            if not items:
                out[uid] = []
                continue
            out[uid] = [(m, s) for (m, s), seen in zip(items, scores) if seen is None][:k]
        return out
