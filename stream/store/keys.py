"""The Redis key layout, in one place. Every key starts with the configured prefix.

    {p}:dedupe:{event_id}        string "1", TTL = dedupe_ttl_seconds    (seen event ids)
    {p}:pop:{segment}            zset item_id -> decayed popularity (scaled, see popularity.py)
    {p}:popref:{segment}         string: reference event time of that zset's scale
    {p}:segments                 set of segment names
    {p}:user:{user_id}:seen      zset item_id -> last event time (capped at history_max)
    {p}:user:{user_id}:profile   hash: profile attributes + "_segment"
    {p}:user:{user_id}:recs      string: JSON of the last list pushed to the recommendations topic
    {p}:item:{item_id}           hash: categories (JSON), created_at, features (JSON)
    {p}:stats                    hash: counters (events_total:<type>, duplicates_total, invalid_total:<reason>, ...)
    {p}:hll:users / hll:items    HyperLogLog of distinct user / item ids seen
    {p}:emb:{kind}:{id}          hash: vec (float32 little-endian bytes), dim, bias, version, updated_at
                                 (kind = "user" or "item"; see embeddings.py)
    {p}:rerank:{layer}           hash: feature -> change of a re-ranker layer's weight since its transfer
                                 start (layer = "_shared" or a segment; see segment_state.py)
    {p}:guard:{segment}          hash: the segment guard's window and what the segment serves (segment_state.py)
    {p}:behaviour                hash: the behaviour clusterer (counters, centres; behaviour_state.py)
    {p}:behaviour:warmup         list: raw behaviour vectors kept to seed the centres
    {p}:user:{user_id}:behaviour hash: the user's behaviour and behaviour segment
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True)
class Keys:
    prefix: str

    def dedupe(self, event_id: str) -> str:
        return f"{self.prefix}:dedupe:{event_id}"

    def pop(self, segment: str) -> str:
        return f"{self.prefix}:pop:{segment}"

    def popref(self, segment: str) -> str:
        return f"{self.prefix}:popref:{segment}"

    @property
    def segments(self) -> str:
        return f"{self.prefix}:segments"

    def seen(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:seen"

    def profile(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:profile"

    def recs(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:recs"

    def item(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    @property
    def hll_users(self) -> str:
        return f"{self.prefix}:hll:users"

    @property
    def hll_items(self) -> str:
        return f"{self.prefix}:hll:items"

    def rerank(self, layer: str) -> str:
        return f"{self.prefix}:rerank:{layer}"

    def guard(self, segment: str) -> str:
        return f"{self.prefix}:guard:{segment}"

    @property
    def behaviour(self) -> str:
        return f"{self.prefix}:behaviour"

    @property
    def behaviour_warmup(self) -> str:
        return f"{self.prefix}:behaviour:warmup"

    def user_behaviour(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:behaviour"

    def embedding(self, kind: str, entity_id: str) -> str:
        if kind not in ("user", "item"):
            raise ValueError(f"embedding kind is {kind!r}: must be 'user' or 'item'")
        return f"{self.prefix}:emb:{kind}:{entity_id}"
