"""The Redis key layout, in one place: every key is built here, Lua scripts get them built.

Every key starts with the configured prefix ``{p}``. On a Redis Cluster (STREAMREC_REDIS_CLUSTER) the
prefix carries a hash tag, for example ``{streamrec}``, so that every key of a deployment hashes to
one slot (:func:`prefix_hash_tag`); each script call names :attr:`Keys.slot` so that the cluster
client sends it to the node that holds that slot::

    {p}:slot                       never written: the one key every script call names (routing)
    {p}:offsets                    hash: "<topic>:<partition>" -> the last offset applied (redeliveries)
    {p}:ids:{bucket}               set: tokens of the event ids applied in that time bucket (producer
                                   resends; keyed hashes, stream.state.tokens), kept two buckets of
                                   dedupe_ttl_seconds / 2
    {p}:user:{user_id}             string: the user's record, binary (stream.state.packing: MF row,
                                   events, recent positives, seen items, behaviour)
    {p}:emb:user:{user_id}         hash: the user's MF row for readers (vec, dim, bias, version, updated_at)
    {p}:user:{user_id}:profile     hash: profile attributes, _segment, _ts
    {p}:user:{user_id}:recs        string: JSON of the last list pushed
    {p}:erased:{token}             string: an erased user's erasure ts; token = HMAC of the user id
                                   (stream.state.tokens); expires after STREAMREC_ERASURE_MARKER_HOURS
    {p}:erasure:key                string: the tokens' key, when STREAMREC_ERASURE_KEY is empty
    {p}:pop:{segment}              zset item_id -> decayed popularity in the segment (relative scale)
    {p}:popref:{segment}           string: the reference event time of that zset's scale
    {p}:segments                   set of profile segment names
    {p}:rerank:{layer}             hash: feature -> change of a re-ranker layer's weight since its start
    {p}:guard:{segment}            hash: the segment guard's state (ring, trials, sum, sum_sq, serving, switches)
    {p}:behaviour                  hash: the behaviour clusterer (n, events, users, sum:<f>, sumsq:<f>,
                                   seeded, c<j>:<f>)
    {p}:behaviour:warmup           list: raw behaviour vectors (JSON) kept until the centres are seeded
    {p}:emb:item:{item_id}         hash: the item's row as its owner last committed it: for readers vec,
                                   dim, bias, version, updated_at; the whole row in row (item-row-v3)
    {p}:owner:{partition}:items    set: the item ids whose rows the owner of that item-updates partition wrote
    {p}:owner:offsets              hash: item-updates partition -> the last offset its owner applied (redeliveries)
    {p}:owner:{partition}:ids:{bucket}
                                   set: the ids of the item updates that partition's owner applied in that
                                   time bucket (outbox resends); buckets of owner_dedupe_seconds / 2, the
                                   last three read (stream.state.window)
    {p}:outbox                     hash: entry_id -> an item update committed but not yet delivered
    {p}:outbox:at                  zset: entry_id -> when it was committed
    {p}:item:{item_id}             hash: catalogue metadata: categories (JSON), created_at, features (JSON)
    {p}:stats                      hash: events_total:<type>, duplicates_total
    {p}:hll:users / :items         HyperLogLog of distinct user / item ids seen
    {p}:hll:recommended            HyperLogLog of items served in prequential trials (coverage)
    {p}:rec:{rec_id}               string: a served list's attribution record (stream.experiments.attribution;
                                   user token, experiment, variant, segment, length, flags, event tokens), TTL =
                                   the join window
    {p}:exp:{name}:users:{variant} hash: user token -> the user's counters in that variant (JSON); a user's
                                   presence is their assignment
    {p}:exp:{name}:assigned        hash: variant -> users assigned
    {p}:exp:{name}:looks           list: the report's looks (JSON), oldest first

The keys named by a user id are exactly :meth:`Keys.per_user`'s (an erasure deletes them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys", "prefix_hash_tag"]


def prefix_hash_tag(prefix: str) -> str | None:
    """The hash tag that every key under ``prefix`` hashes by on a Redis Cluster, or None when the
    prefix has none (its keys then spread over every slot). Redis hashes a key by the text between
    its first ``{`` and the first ``}`` after it, when that text is not empty; the tag must end
    inside the prefix, or it would take in part of each key's own name.

    >>> prefix_hash_tag("{streamrec}"), prefix_hash_tag("shop:{recs}:eu")
    ('streamrec', 'recs')
    >>> prefix_hash_tag("streamrec"), prefix_hash_tag("{}streamrec"), prefix_hash_tag("{streamrec")
    (None, None, None)
    """
    start = prefix.find("{")
    end = prefix.find("}", start + 1) if start >= 0 else -1
    return prefix[start + 1:end] if end > start + 1 else None


@dataclass(frozen=True)
class Keys:
    prefix: str

    @property
    def slot(self) -> str:
        """A key named by every script call, never written: on a Redis Cluster it sends the call to
        the node of the prefix's hash slot, where all the keys the script touches live."""
        return f"{self.prefix}:slot"

    @property
    def offsets(self) -> str:
        return f"{self.prefix}:offsets"

    def ids(self, bucket: int) -> str:
        return f"{self.prefix}:ids:{bucket}"

    def embedding(self, kind: str, entity_id: str) -> str:
        if kind not in ("user", "item"):
            raise ValueError(f"embedding kind is {kind!r}: must be 'user' or 'item'")
        return f"{self.prefix}:emb:{kind}:{entity_id}"

    def user_row(self, user_id: str) -> str:
        return self.embedding("user", user_id)

    def user(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}"

    def profile(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:profile"

    def recs(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:recs"

    def per_user(self, user_id: str) -> list[str]:
        """Every key named by ``user_id``: what an erasure deletes. A new per-user key goes here.

        >>> Keys("p").per_user("u7")
        ['p:user:u7', 'p:emb:user:u7', 'p:user:u7:profile', 'p:user:u7:recs']
        """
        return [self.user(user_id), self.user_row(user_id), self.profile(user_id), self.recs(user_id)]

    def erased(self, token: str) -> str:
        return f"{self.prefix}:erased:{token}"

    @property
    def erasure_key(self) -> str:
        return f"{self.prefix}:erasure:key"

    def pop(self, segment: str) -> str:
        return f"{self.prefix}:pop:{segment}"

    def popref(self, segment: str) -> str:
        return f"{self.prefix}:popref:{segment}"

    @property
    def segments(self) -> str:
        return f"{self.prefix}:segments"

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

    def item_row(self, item_id: str) -> str:
        return self.embedding("item", item_id)

    def owner_items(self, partition: int) -> str:
        return f"{self.prefix}:owner:{partition}:items"

    @property
    def owner_offsets(self) -> str:
        return f"{self.prefix}:owner:offsets"

    def owner_ids(self, partition: int, bucket: int) -> str:
        return f"{self.prefix}:owner:{partition}:ids:{bucket}"

    @property
    def outbox(self) -> str:
        return f"{self.prefix}:outbox"

    @property
    def outbox_at(self) -> str:
        return f"{self.prefix}:outbox:at"

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

    def served_list(self, rec_id: str) -> str:
        return f"{self.prefix}:rec:{rec_id}"

    def experiment_users(self, experiment: str, variant: str) -> str:
        return f"{self.prefix}:exp:{experiment}:users:{variant}"

    def experiment_assigned(self, experiment: str) -> str:
        return f"{self.prefix}:exp:{experiment}:assigned"

    def experiment_looks(self, experiment: str) -> str:
        return f"{self.prefix}:exp:{experiment}:looks"

    @property
    def hll_recommended(self) -> str:
        return f"{self.prefix}:hll:recommended"
