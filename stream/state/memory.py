"""The engine's state in process memory: what ``streamrec evaluate`` and the unit tests use.

Same contract as the Redis store (:mod:`stream.state.base`), checked by one suite that runs
the same events through both (tests/contract/). Reads hand out copies, so a batch that is
recomputed after a :class:`~stream.state.base.Conflict` starts from the state as it was.

Like the Redis store it keeps tokens (:mod:`stream.state.tokens`), not ids, of the event ids
applied and of erased users; erasure markers expire by :attr:`MemoryState.clock`, and so do the
item owners' applied update ids (:mod:`stream.state.window`: the same buckets as in Redis).
"""

from __future__ import annotations

import json
from typing import Iterable

import numpy as np

from stream.models.items import ItemRow
from stream.models.rerank.layers import SHARED_LAYER
from stream.models.segments.behaviour import Clusterer
from stream.state.base import (Commit, Conflict, Erasure, Loaded, OutboxEntry, Profile, SharedState, StateStore,
                               UserRecord)
from stream.state.tokens import Tokens
from stream.state.window import window_buckets

__all__ = ["MemoryState"]


class MemoryState(StateStore):
    """Dicts behind the :class:`~stream.state.base.StateStore` interface.

    Parameters
    ----------
    features
        The behaviour features' names, in vector order (the clusterer's fields name them).
    erasure_key
        The tokens' key (default: a fixed one; nothing here outlives the process).
    marker_ttl_seconds
        How long an erasure marker is kept, in :attr:`clock` seconds.
    owner_dedupe_seconds
        How long an item owner remembers an applied update's id at least, in :attr:`clock` seconds
        (STREAMREC_OWNER_DEDUPE_SECONDS).
    """

    def __init__(self, features: list[str] | tuple[str, ...] = ("activity", "dwell", "skip", "taste_0", "taste_1"),
                 *, erasure_key: bytes = b"streamrec memory state tokens", marker_ttl_seconds: float = 14 * 86400.0,
                 owner_dedupe_seconds: int = 3600) -> None:
        self.features = list(features)
        self.tokens = Tokens(erasure_key)
        self.marker_ttl_seconds = marker_ttl_seconds
        self.markers: dict[str, tuple[float, float]] = {}  # user token -> (erasure ts, expires at, by clock)
        self._feature = {name: j for j, name in enumerate(self.features)}
        n_features = len(self.features)
        self.claimed: set[str] = set()  # tokens of the event ids applied
        self.marks: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset applied
        self.user_records: dict[str, UserRecord] = {}
        self.popularity: dict[str, dict[str, float]] = {}
        self.popularity_refs: dict[str, float] = {}
        self.layers: dict[str, dict[str, float]] = {}
        self.guards: dict[str, dict[str, str]] = {}
        self.clusterer = Clusterer(sums=np.zeros(n_features), sumsq=np.zeros(n_features))
        self.seeded = False
        self.stats: dict[str, int] = {}
        self.profiles: dict[str, Profile] = {}
        self.segments: set[str] = set()
        self.items: dict[str, dict[str, str]] = {}
        self.lists: dict[str, bytes] = {}
        self.users_seen: set[str] = set()  # tokens (Redis keeps a HyperLogLog, which names nobody either)
        self.items_seen: set[str] = set()
        self.recommended: set[str] = set()
        self.owner_dedupe_seconds = owner_dedupe_seconds
        self.owner_marks: dict[int, int] = {}  # item-updates partition -> last offset applied
        self.owner_ids: dict[int, dict[int, set[str]]] = {}  # partition -> time bucket -> update ids applied
        self.owner: dict[int, dict[str, ItemRow]] = {}
        self.outbox: dict[str, OutboxEntry] = {}
        self.outbox_at: dict[str, float] = {}
        self.clock = 0.0  # outbox ages and marker expiry: the time of the last commit (tests set it)

    # -- the batch step ---------------------------------------------------------------
    async def load(self, event_ids: list[str], user_ids: list[str], segments: Iterable[str],
                   clusterer: bool, partitions: Iterable[tuple[str, int]] = ()) -> Loaded:
        users = {}
        for uid in user_ids:
            users[uid] = self._user(uid)
        return Loaded([e in self.claimed for e in self.tokens.events(event_ids)], users,
                      await self.load_segments(segments), self.clusterer.copy() if clusterer else None, self.seeded,
                      {tp: self.marks.get(tp) for tp in partitions})

    def _user(self, uid: str) -> UserRecord:
        rec = self.user_records.get(uid)
        rec = rec.copy() if rec is not None else UserRecord(uid)
        profile = self.profiles.get(uid)
        rec.profile_segment = profile.segment if profile is not None else None
        rec.erased_at = self._marker(uid)
        return rec

    def _marker(self, uid: str) -> float | None:
        """The user's erasure ts while their marker lives, else None."""
        marker = self.markers.get(self.tokens.user(uid))
        return marker[0] if marker is not None and self.clock < marker[1] else None

    async def load_segments(self, segments: Iterable[str]) -> SharedState:
        segments = sorted(set(segments))
        return SharedState(
            {name: dict(self.layers.get(name, {})) for name in [SHARED_LAYER, *segments]},
            {s: (dict(self.guards[s]) if s in self.guards else None) for s in segments},
            {s: self.popularity_refs.get(s) for s in segments},
        )

    async def commit(self, commit: Commit) -> None:
        self._check(commit)
        self.claimed.update(self.tokens.events(commit.event_ids))
        self.marks.update({tp: after for tp, (_, after) in commit.marks.items()})
        for uid, rec in commit.users.items():
            stored = rec.copy()
            stored.profile_segment = None  # profiles live apart (put_profile)
            self.user_records[uid] = stored
        for seg, change in commit.popularity.items():
            scores = self.popularity.setdefault(seg, {})
            if change.factor is not None:
                for item in scores:
                    scores[item] *= change.factor
            self.popularity_refs[seg] = change.ref_after
            for item, inc in change.increments.items():
                scores[item] = scores.get(item, 0.0) + inc
        for layer, changes in commit.layers.items():
            weights = self.layers.setdefault(layer, {})
            for feature, d in changes.items():
                weights[feature] = weights.get(feature, 0.0) + d
        for seg, (_, state) in commit.guards.items():
            self.guards[seg] = dict(state)
        b = commit.behaviour
        if b is not None:
            c = self.clusterer
            for name, d in b.add.items():
                self._bump(c, name, d)
            if b.centres:
                self.seeded = True
                c.centres = self._centres(b.centres)
                c.warmup = []
            elif self.seeded:
                c.centres = c.centres + self._centres(b.moves, like=c.centres)
            else:
                c.warmup.extend(list(v) for v in b.warmup)
        for name, n in commit.stats.items():
            self.stats[name] = self.stats.get(name, 0) + n
        for entry in commit.outbox:
            self.outbox[entry.entry_id] = entry
            self.outbox_at[entry.entry_id] = self.clock
        self.users_seen.update(self.tokens.user(u) for u in commit.users_seen)
        self.items_seen.update(commit.items_seen)
        self.recommended.update(commit.recommended)

    def _check(self, commit: Commit) -> None:
        claimed = [e for e, t in zip(commit.event_ids, self.tokens.events(commit.event_ids)) if t in self.claimed]
        if claimed:
            raise Conflict(f"{len(claimed)} event ids were claimed meanwhile, e.g. {claimed[0]!r}")
        erased = sum(self._marker(uid) != ts for uid, ts in commit.erasures.items())
        if erased:  # the ids stay out of the message: it is logged
            raise Conflict(f"{erased} of the batch's users were erased meanwhile")
        for tp, (before, _) in commit.marks.items():
            if self.marks.get(tp) != before:
                raise Conflict(f"partition {tp} was applied meanwhile (offset {before} -> {self.marks.get(tp)})")
        for seg, (version, _) in commit.guards.items():
            stored = int(self.guards.get(seg, {}).get("trials", 0))
            if stored != version:
                raise Conflict(f"the guard of segment {seg!r} changed meanwhile (trials {version} -> {stored})")
        for seg, change in commit.popularity.items():
            if self.popularity_refs.get(seg) != change.ref_before:
                raise Conflict(f"the popularity scale of segment {seg!r} moved meanwhile")
        if commit.behaviour is not None and commit.seeded_before != self.seeded:
            raise Conflict("the behaviour clusterer was seeded meanwhile")

    def _bump(self, c: Clusterer, name: str, d: float) -> None:
        if name in ("n", "events", "users"):
            setattr(c, name, getattr(c, name) + d)
            return
        kind, feature = name.split(":", 1)  # sum:<feature> / sumsq:<feature>
        (c.sums if kind == "sum" else c.sumsq)[self._feature[feature]] += d

    def _centres(self, fields: dict[str, float], like: np.ndarray | None = None) -> np.ndarray:
        """Centre coordinates from ``c<j>:<feature>`` fields (absolute, or differences onto zeros)."""
        n_clusters = 1 + max((int(k.split(":")[0][1:]) for k in fields), default=-1)
        out = np.zeros(like.shape if like is not None else (n_clusters, len(self.features)))
        for name, v in fields.items():
            c, f = name.split(":", 1)
            out[int(c[1:]), self._feature[f]] = v
        return out

    async def users(self, user_ids: list[str]) -> dict[str, UserRecord]:
        return {uid: self._user(uid) for uid in user_ids}

    async def segment_scores(self, wanted: dict[str, list[str]]) -> dict[str, np.ndarray]:
        out = {}
        for seg, items in wanted.items():
            scores = self.popularity.get(seg, {})
            out[seg] = np.array([scores.get(i, 0.0) for i in items], dtype=np.float64)
        return out

    async def segment_top(self, wanted: dict[str, int]) -> dict[str, list[tuple[str, float]]]:
        # as Redis' ZREVRANGE orders them: score, then member, both descending
        return {seg: sorted(self.popularity.get(seg, {}).items(), key=lambda x: (x[1], x[0]), reverse=True)[:n]
                for seg, n in wanted.items()}

    # -- profiles and the catalogue ----------------------------------------------------
    async def profile_segments(self) -> set[str]:
        return set(self.segments)

    async def put_profile(self, profile: Profile) -> tuple[bool, str | None]:
        erased = self._marker(profile.user_id)
        if erased is not None and profile.ts <= erased:
            self.stats["erased_dropped_total"] = self.stats.get("erased_dropped_total", 0) + 1
            return False, None
        previous = self.profiles.get(profile.user_id)
        self.profiles[profile.user_id] = profile
        self.segments.add(profile.segment)
        return True, (previous.segment if previous is not None else None)

    async def delete_profile(self, user_id: str) -> None:
        self.profiles.pop(user_id, None)

    async def put_item(self, item_id: str, metadata: dict[str, str] | None) -> None:
        if metadata is None:
            self.items.pop(item_id, None)
        else:
            self.items[item_id] = dict(metadata)

    # -- erasure --------------------------------------------------------------------------
    async def erase(self, user_id: str, ts: float) -> Erasure:
        before = self._marker(user_id)
        if before is not None and before >= ts:
            return Erasure("already_erased", before, False)
        found = [d.pop(user_id, None) is not None for d in (self.user_records, self.profiles, self.lists)]
        self.markers[self.tokens.user(user_id)] = (float(ts), self.clock + self.marker_ttl_seconds)
        self.tokens.forget(user_id)
        self.stats["erasures_total"] = self.stats.get("erasures_total", 0) + 1
        return Erasure("erased", float(ts), any(found))

    # -- serving ------------------------------------------------------------------------
    async def last_lists(self, user_ids: list[str]) -> dict[str, bytes | None]:
        return {uid: self.lists.get(uid) for uid in user_ids}

    async def save_lists(self, lists: dict[str, bytes]) -> None:
        self.lists.update({uid: body for uid, body in lists.items() if uid in self.user_records})

    async def coverage(self) -> tuple[int, int]:
        return len(self.recommended), len(self.items_seen)

    # -- the item side ------------------------------------------------------------------
    async def owner_offset(self, partition: int) -> int | None:
        return self.owner_marks.get(partition)

    def _owner_window(self, partition: int) -> tuple[list[int], dict[int, set[str]]]:
        buckets = window_buckets(self.clock, self.owner_dedupe_seconds)
        kept = self.owner_ids.setdefault(partition, {})
        for b in [b for b in kept if b < buckets[-1]]:  # expired, as Redis expires the sets
            del kept[b]
        return buckets, kept

    async def owner_applied(self, partition: int, entry_ids: list[str]) -> list[bool]:
        return self._owner_has(partition, entry_ids)

    def _owner_has(self, partition: int, entry_ids: list[str]) -> list[bool]:
        buckets, kept = self._owner_window(partition)
        sets = [kept.get(b, ()) for b in buckets]
        return [any(e in ids for ids in sets) for e in entry_ids]

    async def owner_commit(self, partition: int, entry_ids: list[str], rows: list[ItemRow],
                           mark: tuple[int | None, int] | None = None) -> None:
        if mark is not None and self.owner_marks.get(partition) != mark[0]:
            raise Conflict(f"item-updates partition {partition} was applied meanwhile (offset {mark[0]} -> "
                           f"{self.owner_marks.get(partition)})")
        again = [e for e, was in zip(entry_ids, self._owner_has(partition, entry_ids)) if was]
        if again:
            raise Conflict(f"item updates applied meanwhile, e.g. {again[0]!r}")
        buckets, kept = self._owner_window(partition)
        if entry_ids:
            kept.setdefault(buckets[0], set()).update(entry_ids)
        if mark is not None:
            self.owner_marks[partition] = mark[1]
        owned = self.owner.setdefault(partition, {})
        for row in rows:
            owned[row.item_id] = row

    async def owner_rows(self, partition: int) -> list[ItemRow]:
        rows = self.owner.get(partition, {})
        return [rows[i] for i in sorted(rows)]  # by item id, as the Redis state reads them

    async def outbox_pending(self, older_than: float) -> list[OutboxEntry]:
        # by commit time, then id, as the Redis state's sorted set gives them
        due = sorted((self.outbox_at[i], i) for i in self.outbox if self.outbox_at[i] < older_than)
        return [self.outbox[i] for _, i in due]

    async def outbox_done(self, entry_ids: list[str]) -> None:
        for e in entry_ids:
            self.outbox.pop(e, None)
            self.outbox_at.pop(e, None)

    def dump(self) -> str:
        """The user side as JSON text (for a look in tests)."""
        return json.dumps({u: {"history": r.history, "events": r.events, "seen": r.seen.keys().tolist()}
                           for u, r in sorted(self.user_records.items())})
