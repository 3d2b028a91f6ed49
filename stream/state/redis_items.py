"""The item side of the Redis state: the item owners' rows and applied update ids, and the outbox.

A mixin of :class:`stream.state.redis.RedisState` (which provides ``redis``, ``keys``,
``scripts`` and ``applied_ttl_seconds``); split out to keep that module small.
"""

from __future__ import annotations

import numpy as np

from stream.engine.messages import MODEL_VERSION, encode_row, row_from_fields
from stream.models.items import ItemRow
from stream.state.base import Conflict, OutboxEntry, text

__all__ = ["RedisItemSide"]


class RedisItemSide:
    """The item owners' calls and the outbox (see :class:`stream.state.base.StateStore`)."""

    # -- the item side ------------------------------------------------------------------
    async def owner_applied(self, entry_ids: list[str]) -> list[bool]:
        if not entry_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for e in entry_ids:
            pipe.exists(self.keys.applied(e))
        return [bool(x) for x in await pipe.execute()]

    async def owner_commit(self, partition: int, entry_ids: list[str], rows: list[ItemRow]) -> None:
        k = self.keys
        argv: list = [int(self.applied_ttl_seconds), len(entry_ids), *(k.applied(e) for e in entry_ids),
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
