"""The foundation's baseline model: segment popularity with exponential time decay, in Redis.

Each applied event adds ``weight * exp((ts - ref) / tau)`` to the item's score in
its segment's sorted set (and in the global one). Growing the increment forward in
event time is the same as decaying every older score, without touching them; when
the exponent passes 50 the set is rescaled and ``ref`` moved, so nothing overflows.

Applying an event is one Lua script, atomic in Redis: it first claims the
event's dedupe key (``SET NX EX``), so a redelivered or retried event changes
nothing. A micro-batch is one pipeline round trip.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from stream.contract import Event
from stream.signals import marks_seen, signal_weight
from stream.store.keys import Keys

__all__ = ["PopularityStore", "APPLY_EVENT_LUA", "GLOBAL_SEGMENT", "Applied"]

GLOBAL_SEGMENT = "_global"

# KEYS: 1 dedupe  2 pop(segment)  3 popref(segment)  4 pop(global)  5 popref(global)
#       6 seen(user)  7 stats  8 hll users  9 hll items
# ARGV: 1 dedupe ttl  2 ts  3 weight  4 item_id  5 user_id  6 tau  7 history_max  8 type  9 mark_seen
APPLY_EVENT_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[7], 'duplicates_total', 1)
  return 0
end
local ts = tonumber(ARGV[2])
local w = tonumber(ARGV[3])
local tau = tonumber(ARGV[6])
local function bump(zkey, refkey)
  local ref = redis.call('GET', refkey)
  if not ref then
    redis.call('SET', refkey, ARGV[2])
    ref = ts
  else
    ref = tonumber(ref)
  end
  local x = (ts - ref) / tau
  if x > 50 then
    local factor = math.exp(-x)
    local all = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      redis.call('ZADD', zkey, tonumber(all[i + 1]) * factor, all[i])
    end
    redis.call('SET', refkey, ARGV[2])
    x = 0
  end
  redis.call('ZINCRBY', zkey, w * math.exp(x), ARGV[4])
end
if w ~= 0 then
  bump(KEYS[2], KEYS[3])
  bump(KEYS[4], KEYS[5])
end
if ARGV[9] == '1' then
  redis.call('ZADD', KEYS[6], ts, ARGV[4])
  local n = redis.call('ZCARD', KEYS[6])
  local cap = tonumber(ARGV[7])
  if n > cap then
    redis.call('ZREMRANGEBYRANK', KEYS[6], 0, n - cap - 1)
  end
end
redis.call('HINCRBY', KEYS[7], 'events_total:' .. ARGV[8], 1)
redis.call('PFADD', KEYS[8], ARGV[5])
redis.call('PFADD', KEYS[9], ARGV[4])
return 1
"""


_SCRIPT_SHA = hashlib.sha1(APPLY_EVENT_LUA.encode()).hexdigest()


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
        self._sha: str | None = None

    async def segments_of(self, user_ids: list[str], default: str) -> dict[str, str]:
        pipe = self.redis.pipeline(transaction=False)
        for uid in user_ids:
            pipe.hget(self.keys.profile(uid), "_segment")
        values = await pipe.execute()
        return {uid: (v.decode() if v else default) for uid, v in zip(user_ids, values)}

    async def apply(self, events: list[Event], segments: dict[str, str], also=None) -> list[Applied]:
        """Apply a micro-batch in one round trip; returns what each event did.

        ``also(pipe)``, when given, queues more writes (the batch's model rows) and makes
        the whole round trip one MULTI/EXEC transaction: the event ids are claimed and the
        rows written together, or nothing is (the script is loaded inside the transaction,
        so a Redis restarted without its script cache cannot apply half of it).
        """
        if not events:
            return []
        import redis.exceptions

        if also is not None:
            results = await self._apply_pipeline(events, segments, also)
        else:
            if self._sha is None:
                self._sha = await self.redis.script_load(APPLY_EVENT_LUA)
            try:
                results = await self._apply_pipeline(events, segments)
            except redis.exceptions.NoScriptError:
                # Redis restarted without the script cache; load it again. Re-running is safe:
                # events applied before the error hit their dedupe keys.
                self._sha = await self.redis.script_load(APPLY_EVENT_LUA)
                results = await self._apply_pipeline(events, segments)
        if len(results) != len(events):
            raise RuntimeError(f"store answered {len(results)} results for {len(events)} events")
        return [Applied(ev, segments[ev.user_id], bool(r)) for ev, r in zip(events, results)]

    async def _apply_pipeline(self, events: list[Event], segments: dict[str, str], also=None) -> list:
        k = self.keys
        pipe = self.redis.pipeline(transaction=also is not None)
        if also is not None:
            self._sha = _SCRIPT_SHA
            pipe.script_load(APPLY_EVENT_LUA)
        for ev in events:
            seg = segments[ev.user_id]
            keys = [
                k.dedupe(ev.event_id), k.pop(seg), k.popref(seg), k.pop(GLOBAL_SEGMENT), k.popref(GLOBAL_SEGMENT),
                k.seen(ev.user_id), k.stats, k.hll_users, k.hll_items,
            ]
            args = [
                self.dedupe_ttl_seconds, repr(ev.ts), repr(signal_weight(ev)), ev.item_id, ev.user_id,
                repr(self._tau), self.history_max, ev.type, "1" if marks_seen(ev) else "0",
            ]
            pipe.evalsha(self._sha, len(keys), *keys, *args)
        if also is None:
            return await pipe.execute()
        also(pipe)
        return (await pipe.execute())[1 : 1 + len(events)]

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
