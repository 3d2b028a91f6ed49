"""The engine's state in Redis: what the worker uses (key layout: :mod:`stream.state.keys`).

A batch loads in one script call (``load.lua``) and commits in one (``commit.lua``), which
checks what the batch was computed from before it writes anything; an item owner commits its
rows, the ids of the updates they contain and its partition's offset with one script
(``owner_commit.lua``, :mod:`stream.state.redis_items`). The scripts only read,
check and store: every value is computed in Python. Keys are built here, from
:class:`~stream.state.keys.Keys`, and passed to the scripts.

Numbers travel as text (``repr``: exact round trips); vectors as little-endian float32 bytes.
Shared counters and weights change by increments (``HINCRBYFLOAT``, ``ZINCRBY``), so the
batches of several workers add up.

Event ids and erased users are kept as keyed hashes (:mod:`stream.state.tokens`). Their key is
STREAMREC_ERASURE_KEY, or, when that is empty, a random one the first worker stores under
``{p}:erasure:key`` and every worker of the prefix then reads.
"""

from __future__ import annotations

import json
from typing import Iterable

import numpy as np

from stream.engine.messages import MODEL_VERSION
from stream.models.rerank.layers import SHARED_LAYER
from stream.models.segments.behaviour import Clusterer
from stream.state.base import Commit, Conflict, Erasure, Loaded, Profile, SharedState, StateStore, UserRecord, text
from stream.state.keys import Keys
from stream.state.packing import pack_user, unpack_user
from stream.state.redis_args import CommitArgs, num as _f, pairs_float, pairs_text, user_row_fields
from stream.state.redis_items import RedisItemSide
from stream.state.scripts import Scripts
from stream.state.tokens import Tokens, random_key
from stream.state.window import bucket_expiry, window_buckets

__all__ = ["RedisState", "MODEL_VERSION"]


class RedisState(RedisItemSide, StateStore):
    """Redis behind the :class:`~stream.state.base.StateStore` interface.

    Parameters
    ----------
    redis
        An async redis-py client (``redis.asyncio.Redis``).
    keys
        The key layout (its prefix).
    n_factors
        The MF model's factor count (a stored row of another count is ignored).
    behaviour_features
        The behaviour features' names (the clusterer's fields).
    dedupe_ttl_seconds
        How long an applied event id is remembered at least (producer resends; redeliveries are
        caught by the applied offsets, whatever their age).
    owner_dedupe_seconds
        How long an item owner remembers an applied update's id at least (a resend from the
        outbox is dropped within it; redeliveries of item-updates are caught by the partitions'
        applied offsets, whatever their age).
    erasure_key
        The key of the tokens (:mod:`stream.state.tokens`); None: the one kept in Redis, made once.
    marker_ttl_seconds
        How long an erasure marker is kept.
    """

    def __init__(self, redis, keys: Keys, *, n_factors: int, behaviour_features: list[str] | None = None,
                 dedupe_ttl_seconds: int = 600, owner_dedupe_seconds: int = 3600, clock=None,
                 erasure_key: bytes | None = None, marker_ttl_seconds: int = 14 * 86400) -> None:
        import time

        self.redis = redis
        self.keys = keys
        self.n_factors = n_factors
        self.features = list(behaviour_features or [])
        self.dedupe_ttl_seconds = dedupe_ttl_seconds
        self.owner_dedupe_seconds = int(owner_dedupe_seconds)
        self.clock = clock or time.time
        self.scripts = Scripts(redis, keys.slot)
        self.marker_ttl_seconds = int(marker_ttl_seconds)
        self._tokens = Tokens(erasure_key) if erasure_key else None

    async def tokens(self) -> Tokens:
        """The tokens' hashes: of STREAMREC_ERASURE_KEY, or of the key kept in Redis (made by the
        first worker that needs it; SET NX, so every worker of the prefix gets the same)."""
        if self._tokens is None:
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(self.keys.erasure_key, random_key(), nx=True)
            pipe.get(self.keys.erasure_key)
            _, key = await pipe.execute()
            self._tokens = Tokens(key if isinstance(key, bytes) else str(key).encode())
        return self._tokens

    # -- the batch step ---------------------------------------------------------------

    @classmethod
    def for_engine(cls, redis, settings, config, n_factors: int) -> "RedisState":
        """The worker's state: keys under STREAMREC_REDIS_PREFIX, the engine's behaviour features,
        dedupe ids kept STREAMREC_DEDUPE_TTL_SECONDS, the item owners' update ids
        STREAMREC_OWNER_DEDUPE_SECONDS, erasure markers STREAMREC_ERASURE_MARKER_HOURS,
        tokens keyed by STREAMREC_ERASURE_KEY (or the key kept in Redis)."""
        features = config.behaviour.features if config.behaviour is not None else []
        return cls(redis, Keys(settings.redis_prefix), n_factors=n_factors, behaviour_features=features,
                   dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
                   owner_dedupe_seconds=settings.owner_dedupe_seconds,
                   erasure_key=settings.erasure_key.get_secret_value().encode() or None,
                   marker_ttl_seconds=round(settings.erasure_marker_hours * 3600))

    def _buckets(self) -> list[str]:
        """The event-id sets of the dedupe window: this half-window's (written) and the two
        before it (read), so an id is remembered for at least ``dedupe_ttl_seconds``."""
        return [self.keys.ids(b) for b in window_buckets(self.clock(), self.dedupe_ttl_seconds)]

    async def load(self, event_ids: list[str], user_ids: list[str], segments: Iterable[str],
                   clusterer: bool, partitions: Iterable[tuple[str, int]] = ()) -> Loaded:
        k = self.keys
        tokens = await self.tokens()
        segments = sorted(set(segments))
        layers = [SHARED_LAYER, *segments]
        parts = sorted(set(partitions))
        arg = {"offsets": k.offsets, "marks": [f"{t}:{p}" for t, p in parts],
               "buckets": self._buckets() if event_ids else [], "ids": tokens.events(event_ids),
               "users": [k.user(u) for u in user_ids], "profiles": [k.profile(u) for u in user_ids],
               "erased": [k.erased(tokens.user(u)) for u in user_ids],
               "layers": [k.rerank(name) for name in layers], "guards": [k.guard(s) for s in segments],
               "poprefs": [k.popref(s) for s in segments],
               "clusterer": [k.behaviour, k.behaviour_warmup] if clusterer else []}
        marks, claims, states, profiles, layer_raw, guard_raw, refs, clus, erased = await self.scripts.load(
            args=[json.dumps(arg, separators=(",", ":"))])
        claims = text(claims) if claims else ""
        dim = self.n_factors
        records = {}
        for uid, blob, seg, marker in zip(user_ids, states, profiles, erased):
            rec = unpack_user(uid, blob, dim) if blob else UserRecord(uid)
            rec.profile_segment = text(seg) if seg else None
            rec.erased_at = float(marker) if marker is not None else None
            records[uid] = rec
        shared = SharedState(
            {name: pairs_float(raw) for name, raw in zip(layers, layer_raw)},
            {s: (pairs_text(raw) or None) for s, raw in zip(segments, guard_raw)},
            {s: (float(r) if r is not None else None) for s, r in zip(segments, refs)},
        )
        model, seeded = (self._clusterer(clus) if clusterer else (None, False))
        return Loaded([c == "1" for c in claims], records, shared, model, seeded,
                      {tp: (int(m) if m is not None else None) for tp, m in zip(parts, marks or [])})

    def _clusterer(self, raw) -> tuple[Clusterer, bool]:
        fields_raw, warmup = raw if raw else ([], [])
        fields = pairs_text(fields_raw)
        seeded = fields.pop("seeded", None) is not None
        nums = {f: float(v) for f, v in fields.items()}
        names = self.features
        c = Clusterer(nums.get("n", 0.0), nums.get("events", 0.0), nums.get("users", 0.0),
                      np.array([nums.get(f"sum:{f}", 0.0) for f in names]),
                      np.array([nums.get(f"sumsq:{f}", 0.0) for f in names]))
        if seeded:
            n_clusters = 1 + max((int(f.split(":")[0][1:]) for f in nums if f.startswith("c") and ":" in f),
                                 default=-1)
            c.centres = np.array([[nums.get(f"c{j}:{f}", 0.0) for f in names] for j in range(n_clusters)])
        else:
            c.warmup = [json.loads(v) for v in warmup]
        return c, seeded

    async def load_segments(self, segments: Iterable[str]) -> SharedState:
        return (await self.load([], [], segments, False)).shared

    async def commit(self, commit: Commit) -> None:
        k = self.keys
        tokens = await self.tokens()
        a = CommitArgs()
        if commit.event_ids:
            buckets = self._buckets()
            ids = tokens.events(commit.event_ids)
            a.not_in = [buckets, ids]
            a.op("sadd", buckets[0], *ids)
            # read while it is one of the last three half-windows: at most two more after its own
            a.op("expire", buckets[0], str(bucket_expiry(self.dedupe_ttl_seconds)))
        if commit.marks:
            marks = sorted(commit.marks.items())
            for (t, p), (before, _) in marks:
                a.expect.append([k.offsets, f"{t}:{p}", False if before is None else str(before)])
            a.op("hset", k.offsets, *[x for (t, p), (_, after) in marks for x in (f"{t}:{p}", str(after))])
        for uid, ts in commit.erasures.items():  # an erasure since the load: computed again, the events dropped
            a.expect_str.append([k.erased(tokens.user(uid)), False if ts is None else _f(ts)])
        for uid, rec in commit.users.items():
            a.ops.append(["set", k.user(uid), a.blob(pack_user(rec))])
            if rec.row is not None:
                a.hset(k.user_row(uid), user_row_fields(rec.row))
        for seg, change in commit.popularity.items():
            a.expect_str.append([k.popref(seg), False if change.ref_before is None else _f(change.ref_before)])
            if change.factor is not None:
                a.op("zscale", k.pop(seg), _f(change.factor))
            if change.ref_after != change.ref_before:
                a.op("set", k.popref(seg), _f(change.ref_after))
            if change.increments:
                a.op("zincrby", k.pop(seg), *[x for item, inc in change.increments.items() for x in (_f(inc), item)])
        for layer, changes in commit.layers.items():
            a.op("hincrbyfloat", k.rerank(layer), *[x for f, d in sorted(changes.items()) for x in (f, _f(d))])
        for seg, (version, state) in commit.guards.items():
            a.expect.append([k.guard(seg), "trials", str(version) if version else False])
            a.hset(k.guard(seg), state)
        b = commit.behaviour
        if b is not None:
            a.expect.append([k.behaviour, "seeded", "1" if commit.seeded_before else False])
            if b.add:
                a.op("hincrbyfloat", k.behaviour, *[x for f, d in sorted(b.add.items()) for x in (f, _f(d))])
            if b.centres:
                a.hset(k.behaviour, {**{f: _f(v) for f, v in b.centres.items()}, "seeded": "1"})
                a.op("del", k.behaviour_warmup)
            elif commit.seeded_before:
                if b.moves:
                    a.op("hincrbyfloat", k.behaviour, *[x for f, d in sorted(b.moves.items()) for x in (f, _f(d))])
            elif b.warmup:
                a.op("rpush", k.behaviour_warmup, *[json.dumps(v) for v in b.warmup])
        if commit.stats:
            a.op("hincrby", k.stats, *[x for f, n in sorted(commit.stats.items()) for x in (f, str(int(n)))])
        now = _f(self.clock())
        for entry in commit.outbox:
            a.ops.append(["hset", k.outbox, entry.entry_id, a.blob(entry.payload)])
            a.op("zadd", k.outbox_at, now, entry.entry_id)
        for key, members in ((k.hll_users, commit.users_seen), (k.hll_items, commit.items_seen),
                             (k.hll_recommended, commit.recommended)):
            if members:
                a.op("pfadd", key, *members)
        await self._run(a)

    async def _run(self, a: CommitArgs) -> None:
        out = await self.scripts.commit(args=a.argv())
        if isinstance(out, list):
            raise Conflict(f"the commit was refused: {text(out[1])}")

    async def users(self, user_ids: list[str]) -> dict[str, UserRecord]:
        return (await self.load([], user_ids, [], False)).users

    async def segment_scores(self, wanted: dict[str, list[str]]) -> dict[str, np.ndarray]:
        order = sorted(wanted)
        arg = json.dumps([[self.keys.pop(s), wanted[s]] for s in order], separators=(",", ":"))
        answers = await self.scripts.segment_scores(args=[arg])
        return {s: np.array(ans, dtype=np.float64) for s, ans in zip(order, answers)}  # numbers as bytes

    async def segment_top(self, wanted: dict[str, int]) -> dict[str, list[tuple[str, float]]]:
        order = sorted(wanted)
        pipe = self.redis.pipeline(transaction=False)
        for s in order:
            pipe.zrevrange(self.keys.pop(s), 0, max(int(wanted[s]), 1) - 1, withscores=True)
        rows = await pipe.execute()
        return {s: [(text(m), float(v)) for m, v in r] for s, r in zip(order, rows)}

    # -- profiles and the catalogue ----------------------------------------------------
    async def profile_segments(self) -> set[str]:
        return {text(s) for s in await self.redis.smembers(self.keys.segments)}

    async def put_profile(self, profile: Profile) -> tuple[bool, str | None]:
        k = self.keys
        fields = {**profile.attributes, "_segment": profile.segment, "_ts": _f(profile.ts)}
        arg = {"marker": k.erased((await self.tokens()).user(profile.user_id)), "profile": k.profile(profile.user_id),
               "segments": k.segments, "stats": k.stats, "ts": _f(profile.ts), "segment": profile.segment,
               "fields": [x for pair in fields.items() for x in pair]}
        out = await self.scripts.profile(args=[json.dumps(arg, separators=(",", ":"))])
        if text(out[0]) != "stored":
            return False, None
        previous = out[1] if len(out) > 1 else None
        return True, (text(previous) if previous is not None else None)

    async def delete_profile(self, user_id: str) -> None:
        await self.redis.delete(self.keys.profile(user_id))

    async def put_item(self, item_id: str, metadata: dict[str, str] | None) -> None:
        if metadata is None:
            await self.redis.delete(self.keys.item(item_id))
        else:
            await self.redis.hset(self.keys.item(item_id), mapping=metadata)

    # -- erasure --------------------------------------------------------------------------
    async def erase(self, user_id: str, ts: float) -> Erasure:
        k = self.keys
        arg = {"marker": k.erased((await self.tokens()).user(user_id)), "ts": _f(ts), "ttl": self.marker_ttl_seconds,
               "keys": k.per_user(user_id), "stats": k.stats}
        status, at, found = await self.scripts.erase(args=[json.dumps(arg, separators=(",", ":"))])
        (await self.tokens()).forget(user_id)
        return Erasure(text(status), float(at), bool(int(found)))

    # -- serving ------------------------------------------------------------------------
    async def last_lists(self, user_ids: list[str]) -> dict[str, bytes | None]:
        if not user_ids:
            return {}
        values = await self.redis.mget([self.keys.recs(u) for u in user_ids])
        return dict(zip(user_ids, values))

    async def save_lists(self, lists: dict[str, bytes]) -> None:
        if lists:
            users = list(lists)
            pairs = [[self.keys.user(u), self.keys.recs(u)] for u in users]
            await self.scripts.save_lists(args=[json.dumps(pairs, separators=(",", ":")), *(lists[u] for u in users)])

    async def coverage(self) -> tuple[int, int]:
        pipe = self.redis.pipeline(transaction=False)
        for key in (self.keys.hll_recommended, self.keys.hll_items):
            pipe.execute_command("PFCOUNT", key)  # as a command: a cluster client's pipeline refuses pfcount()
        rec, items = await pipe.execute()
        return int(rec), int(items)

    async def close(self) -> None:
        await self.redis.aclose()
