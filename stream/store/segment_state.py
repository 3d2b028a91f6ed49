"""The segment models' shared state in Redis: re-ranker weights and segment guards.

Every worker serves and learns the same segment models, so their state is not kept in
one worker's memory: it lives in Redis and changes inside the batch's apply script (see
popularity.py), in the same atomic call that claims the batch's event ids. A redelivered
batch finds its ids claimed and learns nothing again; a crash loses nothing applied.

    {p}:rerank:{layer}    hash: feature -> change of the layer's weight since its transfer
                          start (layer "_shared", or a segment). A missing hash is the start:
                          the global ranking. Batches add their changes with HINCRBYFLOAT, so
                          two workers learning the same segment add up rather than overwrite.
    {p}:guard:{segment}   hash: ring (the window of paired differences, one byte each: "a" -1,
                          "b" 0, "c" +1), trials, sum, sum_sq, serving ("segment" or "global"),
                          switches (count)

The guard's rule is :class:`stream.models.guard.SegmentGuard`'s, run in Lua
(``GUARD_LUA``) so that it changes atomically with the trials it counts;
tests/integration/test_segment_models.py checks that both switch on the same trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GUARD_LUA", "SHARED_LAYER", "SegmentUpdates", "GuardResult", "load_segment_state", "SEGMENT_POPULARITY_LUA"]

#: The re-ranker layer every segment shares.
SHARED_LAYER = "_shared"

# guard_update(key, diffs, g): diffs a list of -1/0/1 (hit(segment) - hit(global), trial by
# trial), g = {window, min_trials, margin, z, recover_margin}. Returns {serving, switches,
# mean, standard error, trials in window}, floats as strings (Redis truncates Lua numbers).
GUARD_LUA = """
local function guard_update(key, diffs, g)
  local W, min_trials, margin, z, recover = g[1], g[2], g[3], g[4], g[5]
  local s = redis.call('HMGET', key, 'ring', 'trials', 'sum', 'sum_sq', 'serving')
  local ring, trials, sum, sq = s[1], tonumber(s[2] or '0'), tonumber(s[3] or '0'), tonumber(s[4] or '0')
  local serving = s[5] or 'segment'
  if not ring or #ring ~= W then  -- new, or the window was reconfigured: start it again
    ring, trials, sum, sq = string.rep('b', W), 0, 0, 0
  end
  local buf = {string.byte(ring, 1, -1)}
  local switches, mean, se, n = {}, 0, 0, 0
  for _, d in ipairs(diffs) do
    local pos = trials % W + 1
    local old = 0
    if trials >= W then old = buf[pos] - 98 end
    sum = sum + d - old
    sq = sq + d * d - old * old
    buf[pos] = 98 + d
    trials = trials + 1
    n = math.min(trials, W)
    mean = sum / n
    se = 0
    if n >= 2 then se = math.sqrt(math.max(sq - n * mean * mean, 0) / (n - 1) / n) end
    if n >= min_trials then
      local to = nil
      if serving == 'segment' and mean < -math.max(margin, z * se) then to = 'global'
      elseif serving == 'global' and mean >= recover then to = 'segment' end
      if to then
        serving = to
        switches[#switches + 1] = {to, trials, string.format('%.6f', mean), string.format('%.6f', se), n}
      end
    end
  end
  local parts = {}
  for i = 1, W, 4000 do  -- unpack() has a stack limit: chunks
    parts[#parts + 1] = string.char(unpack(buf, i, math.min(i + 3999, W)))
  end
  redis.call('HSET', key, 'ring', table.concat(parts), 'trials', trials, 'sum', sum, 'sum_sq', sq,
             'serving', serving)
  if #switches > 0 then redis.call('HINCRBY', key, 'switches', #switches) end
  return {serving, switches, string.format('%.6f', mean), string.format('%.6f', se), n}
end
"""

# The apply script's part (after the events: ``out`` holds "1" per applied event):
# a.layers = [[layer, feature, change, feature, change, ...], ...]
# a.guards = [[segment, [[event position, diff], ...], [window, min_trials, margin, z, recover]], ...]
# Only trials whose event this call applied count (a duplicate was counted when it was applied).
APPLY_SEGMENTS_LUA = """
local guarded = {}
for _, l in ipairs(a.layers or {}) do
  local key = p .. ':rerank:' .. l[1]
  for i = 2, #l, 2 do
    redis.call('HINCRBYFLOAT', key, l[i], string.format('%.17g', l[i + 1]))
  end
end
for _, g in ipairs(a.guards or {}) do
  local diffs = {}
  for _, t in ipairs(g[2]) do
    if out[t[1]] == '1' then diffs[#diffs + 1] = t[2] end
  end
  if #diffs > 0 then
    guarded[#guarded + 1] = {g[1], guard_update(p .. ':guard:' .. g[1], diffs, g[3])}
  end
end
"""


# ARGV[1]: JSON {"prefix", "segments": [[segment, [item, ...]], ...]}: each segment's items'
# decayed popularity (nil when absent) in one call: one JSON argument packs far faster in
# redis-py than a ZMSCORE command per user.
SEGMENT_POPULARITY_LUA = """
local a = cjson.decode(ARGV[1])
local out = {}
for n, s in ipairs(a.segments) do
  local key, items, scores = a.prefix .. ':pop:' .. s[1], s[2], {}
  for i = 1, #items, 1000 do
    local part = redis.call('ZMSCORE', key, unpack(items, i, math.min(i + 999, #items)))
    for j = 1, #part do scores[#scores + 1] = part[j] or '' end
  end
  out[n] = scores
end
return out
"""


@dataclass(frozen=True)
class GuardResult:
    """A segment's guard after a batch's trials: what it serves, its switches, its window."""

    segment: str
    serving: str  # "segment" or "global"
    switches: list[dict]  # {"to", "trial", "mean_difference", "standard_error", "window"} each
    mean_difference: float
    standard_error: float
    window: int

    @classmethod
    def parse(cls, raw) -> "GuardResult":
        segment, (serving, switches, mean, se, n) = _text(raw[0]), raw[1]
        return cls(segment, _text(serving),
                   [{"to": _text(to), "trial": int(trial), "mean_difference": float(_text(m)),
                     "standard_error": float(_text(s)), "window": int(w)} for to, trial, m, s, w in switches],
                   float(_text(mean)), float(_text(se)), int(n))


@dataclass
class SegmentUpdates:
    """A batch's changes to the segment models, applied by the store's apply script."""

    layers: dict[str, dict[str, float]] = field(default_factory=dict)  # layer -> feature -> weight change
    trials: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # segment -> (event position, diff)
    guard_params: dict[str, list] = field(default_factory=dict)  # segment -> [window, min_trials, margin, z, recover]
    results: list[GuardResult] = field(default_factory=list)  # filled in by the apply

    def script_args(self) -> dict:
        return {
            "layers": [[layer, *(x for name, change in sorted(changes.items()) for x in (name, change))]
                       for layer, changes in sorted(self.layers.items()) if changes],
            "guards": [[segment, [[pos + 1, d] for pos, d in trials], self.guard_params[segment]]
                       for segment, trials in sorted(self.trials.items()) if trials],
        }


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


async def load_segment_state(redis, keys, segments) -> tuple[dict[str, dict[str, float]], dict[str, bool]]:
    """Weight changes of the shared layer and of ``segments``' layers, and whether each segment
    serves its own model (True) or the global ranking (False): one pipeline."""
    segments = sorted(set(segments))
    layers = [SHARED_LAYER, *segments]
    pipe = redis.pipeline(transaction=False)
    for layer in layers:
        pipe.hgetall(keys.rerank(layer))
    for segment in segments:
        pipe.hget(keys.guard(segment), "serving")
    out = await pipe.execute()
    changes = {layer: {_text(f): float(v) for f, v in raw.items()} for layer, raw in zip(layers, out)}
    serving = {segment: (v is None or _text(v) == "segment") for segment, v in zip(segments, out[len(layers):])}
    return changes, serving
