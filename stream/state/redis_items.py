"""The item side of the Redis state: the item owners' rows, what they applied, and the outbox.

What an owner applied is kept as the user side keeps it (:mod:`stream.state.redis`): per
item-updates partition the last offset applied (``{p}:owner:offsets``, one field a partition:
Kafka's redeliveries), and the ids of the updates applied within ``owner_dedupe_seconds``, in
time-bucketed sets that expire (``{p}:owner:{P}:ids:{bucket}``, :mod:`stream.state.window`: the
outbox's resends, which come at a new offset). The ids are kept as they are, not hashed: an
update's id is a hash of its batch's event ids and the partition (``init:<item>`` for a new
item's), so it names no user.

A mixin of :class:`stream.state.redis.RedisState` (which provides ``redis``, ``keys``,
``scripts``, ``clock`` and ``owner_dedupe_seconds``); split out to keep that module small.
"""

from __future__ import annotations

import numpy as np

from stream.engine.messages import MODEL_VERSION, encode_row, row_from_fields
from stream.models.items import ItemRow
from stream.state.base import Conflict, OutboxEntry, text
from stream.state.window import bucket_expiry, window_buckets

__all__ = ["RedisItemSide"]


class RedisItemSide:
    """The item owners' calls and the outbox (see :class:`stream.state.base.StateStore`)."""

    # -- the item side ------------------------------------------------------------------
    def _owner_sets(self, partition: int) -> list[str]:
        """The id sets of the owner's dedupe window, the current bucket's first."""
        return [self.keys.owner_ids(partition, b) for b in window_buckets(self.clock(), self.owner_dedupe_seconds)]

    async def owner_offset(self, partition: int) -> int | None:
        got = await self.redis.hget(self.keys.owner_offsets, str(partition))
        return int(got) if got is not None else None

    async def owner_applied(self, partition: int, entry_ids: list[str]) -> list[bool]:
        if not entry_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key in self._owner_sets(partition):
            pipe.smismember(key, entry_ids)
        return [any(found) for found in zip(*await pipe.execute())]

    async def owner_commit(self, partition: int, entry_ids: list[str], rows: list[ItemRow],
                           mark: tuple[int | None, int] | None = None) -> None:
        k = self.keys
        sets = self._owner_sets(partition)
        before, after = ("-", "") if mark is None else ("" if mark[0] is None else str(mark[0]), str(mark[1]))
        argv: list = [k.owner_offsets, str(partition), before, after, sets[0],
                      bucket_expiry(self.owner_dedupe_seconds), len(sets), *sets, len(entry_ids), *entry_ids,
                      k.owner_items(partition), len(rows)]
        for row in rows:
            s = row.mf
            argv += [k.item_row(row.item_id), row.item_id, np.asarray(s.vector, dtype="<f4").tobytes(),
                     len(s.vector), repr(float(s.bias)), repr(float(s.updated_at)), encode_row(row)]
        argv.append(MODEL_VERSION)
        out = await self.scripts.owner_commit(args=argv)
        if isinstance(out, list):
            raise Conflict(f"the commit was refused: {text(out[1])}")

    async def owner_rows(self, partition: int) -> list[ItemRow]:
        items = sorted(text(i) for i in await self.redis.smembers(self.keys.owner_items(partition)))
        if not items:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for i in items:
            pipe.hgetall(self.keys.item_row(i))
        out = []
        for item, fields in zip(items, await pipe.execute()):
            if fields:
                out.append(row_from_fields(item, {text(key): v for key, v in fields.items()}))
        return out

    async def outbox_pending(self, older_than: float) -> list[OutboxEntry]:
        ids = [text(i) for i in await self.redis.zrangebyscore(self.keys.outbox_at, "-inf", f"({older_than!r}")]
        if not ids:
            return []
        payloads = await self.redis.hmget(self.keys.outbox, ids)
        out = []
        for eid, payload in zip(ids, payloads):
            if payload is not None:
                out.append(OutboxEntry(eid, int(eid.rsplit("/", 1)[1]), payload))
        return out

    async def outbox_done(self, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.outbox, *entry_ids)
        pipe.zrem(self.keys.outbox_at, *entry_ids)
        await pipe.execute()
