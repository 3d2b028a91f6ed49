"""The item side of the MF model inside the worker (free of Faust).

:class:`ItemOwner` applies the gradients of the item-updates partitions this worker owns:
each item's partition has one owner, so each item row has one writer. It publishes the
new rows to the compacted item-factors topic and to Redis (embedding hashes).

:class:`ItemFactors` applies item-factors messages to this worker's copy of every item
row; every worker reads the whole topic, from the beginning, at start.
"""

from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable

import numpy as np

from stream.agents.messages import ItemInit, decode_item, decode_item_update, encode_item
from stream.metrics import Metrics
from stream.models.sharded import ItemState, ShardedMF
from stream.store.embeddings import EmbeddingWriter
from stream.store.userstate import MODEL_VERSION

__all__ = ["ItemOwner", "ItemFactors"]

log = logging.getLogger(__name__)


class ItemOwner:
    CATEGORY_SAMPLE = 200  # items of a category whose mean starts a new item
    def __init__(self, mf: ShardedMF, publish: Callable[[str, bytes], Awaitable[None]],
                 flush: Callable[[], Awaitable[None]], writer: EmbeddingWriter, metrics: Metrics,
                 reject: Callable[..., Awaitable[None]], clock: Callable[[], float] = time.time) -> None:
        self.mf = mf
        self.publish_item = publish
        self.flush_producer = flush
        self.writer = writer
        self.metrics = metrics
        self.reject = reject
        self.clock = clock
        self._dirty: dict[str, ItemState] = {}
        self._bad: list = []  # (record, detail) of undecodable messages, dead-lettered by publish()
        self._by_category: dict[str, list[str]] = {}  # of the items this owner was told about

    def apply(self, records) -> int:
        """Apply the gradient messages (once: the caller retries :meth:`publish`, never this)."""
        now = self.clock()
        applied = 0
        for rec in records:
            try:
                update = decode_item_update(rec.value or b"")
            except ValueError as exc:
                self._bad.append((rec, str(exc)))
                continue
            if isinstance(update, ItemInit):
                self._init(update, now)
                continue
            for state in self.mf.apply_gradients(update, now):
                self._dirty[state.item_id] = state
            applied += len(update)
        self.metrics.item_updates_applied_total.inc(applied)
        return applied

    def _init(self, init: ItemInit, now: float) -> None:
        """A new item starts from the mean row of the latest items of its categories."""
        like: list[str] = []
        for cat in init.categories:
            like += self._by_category.get(cat, [])[-self.CATEGORY_SAMPLE:]
        state = self.mf.init_item(init.item_id, like, now)
        if state is not None:
            self._dirty[state.item_id] = state
            self.metrics.items_initialised_total.inc()
        for cat in init.categories:
            members = self._by_category.setdefault(cat, [])
            if init.item_id not in members[-self.CATEGORY_SAMPLE:]:
                members.append(init.item_id)
                del members[: -4 * self.CATEGORY_SAMPLE]

    async def publish(self) -> int:
        """Send the changed rows to item-factors and Redis; what fails stays pending for the retry."""
        while self._bad:
            rec, detail = self._bad[0]
            await self.reject(rec, "invalid_gradient", detail)
            self._bad.pop(0)
        if not self._dirty:
            return 0
        states = list(self._dirty.values())
        for s in states:
            await self.publish_item(s.item_id, encode_item(s))
        await self.flush_producer()
        self.writer.add("item", [s.item_id for s in states], np.stack([s.vector for s in states]),
                        version=MODEL_VERSION, updated_at=self.clock(), biases=np.array([s.bias for s in states]))
        await self.writer.flush()
        self._dirty.clear()
        return len(states)


class ItemFactors:
    """Applies item rows published by their owners to this worker's copy of the model."""

    def __init__(self, mf: ShardedMF, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self.mf = mf
        self.metrics = metrics
        self.clock = clock
        self.read = 0  # rows read from item-factors
        self.applied = 0  # of which newer than this worker's copy (its own rows come back as old news)
        self.invalid = 0

    def apply(self, values: list[bytes | None]) -> int:
        now = self.clock()
        n = 0
        for value in values:
            if value is None:
                continue
            try:
                state = decode_item(value)
                self.read += 1
                # how old a row is when it reaches this worker (its own rows too: the topic's delay)
                self.metrics.embedding_age_seconds.labels("item").observe(max(0.0, now - state.updated_at))
                if self.mf.load_item(state):
                    n += 1
            except ValueError as exc:
                self.invalid += 1
                if self.invalid <= 10 or self.invalid % 1000 == 0:  # e.g. rows of another factor count
                    log.warning("ignored an item-factors message (%d so far): %s", self.invalid, exc)
        self.applied += n
        self.metrics.model_items.set(self.mf.n_items)
        return n
