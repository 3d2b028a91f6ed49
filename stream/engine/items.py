"""The item side in motion: owners apply item updates exactly once; copies take published rows.

    user side: a batch's ItemUpdate, split by owner partition, committed to the outbox
               (atomically with the batch, stream.state), then delivered
    owner:     ItemOwner.apply  - drops updates it applied before (a redelivery: at or below its
               item-updates partition's applied offset; a resend from the outbox: its id applied
               within the owner's dedupe window), applies the rest (ItemTable.apply), commits the
               rows with the ids and the offset, atomically
    copies:    ItemCopy.apply   - every worker's table takes the owners' published rows

An update's id comes from the events that made it (:func:`entry_id`), and an update is made
once: in the commit that claims those events. So a batch redelivered after a crash makes no
second update (its events are claimed), and an update delivered twice is dropped by its owner
(Kafka's redelivery by its offset, whatever its age; a resend from the outbox by its id, within
STREAMREC_OWNER_DEDUPE_SECONDS): each item-side effect is applied exactly once, unless an update
waited in the outbox longer than that window (a broker outage that long), when it is applied twice.

Offline, :class:`DirectBus` hands each batch's updates to the owner right after the commit
(one process owns every item).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from abc import ABC, abstractmethod
from typing import Awaitable, Callable

import numpy as np

from stream.engine.messages import ItemInit, decode_row, decode_update, encode_update
from stream.models.items import ItemRow, ItemTable, ItemUpdate
from stream.state.base import Conflict, OutboxEntry, StateStore

__all__ = ["entry_id", "outbox_entries", "ItemOwner", "ItemCopy", "ItemBus", "DirectBus", "KafkaBus", "Gather"]

log = logging.getLogger(__name__)


def entry_id(event_ids: list[str], partition: int) -> str:
    """The id of a batch's update for one owner partition, from the batch's event ids.

    >>> entry_id(["e1", "e2"], 3) == entry_id(["e1", "e2"], 3), entry_id(["e1"], 3) == entry_id(["e1"], 2)
    (True, False)
    """
    digest = hashlib.blake2b("\x1f".join(event_ids).encode("utf-8"), digest_size=12).hexdigest()
    return f"{digest}/{partition}"


def outbox_entries(update: ItemUpdate, event_ids: list[str], partitions: int, dim: int) -> list[OutboxEntry]:
    """A batch's update split by owner, each part with its id and payload."""
    if not update:
        return []
    out = []
    for p, part in sorted(update.split(partitions).items()):
        if part:
            eid = entry_id(event_ids, p)
            out.append(OutboxEntry(eid, p, lambda eid=eid, part=part: encode_update(eid, part, dim), part))
    return out


class ItemOwner:
    """Applies the item updates of the partitions this process owns, once each.

    Parameters
    ----------
    table
        The item table (the owner's rows are the authoritative ones of its partitions).
    state
        Keeps the applied offsets, the applied ids of the dedupe window and the committed rows
        (:meth:`StateStore.owner_commit`).
    clock
        Wall-clock seconds (rows' ``updated_at``).
    keep_rows
        Build the changed rows, commit them to the state and return them (to publish). False:
        one process holds every item and its table is the whole truth (offline evaluation).
    """

    CATEGORY_SAMPLE = 200  # items of a category whose mean starts a new item

    def __init__(self, table: ItemTable, state: StateStore, clock: Callable[[], float] = time.time,
                 keep_rows: bool = True) -> None:
        self.table = table
        self.state = state
        self.clock = clock
        self.keep_rows = keep_rows
        self._taken: set[int] = set()
        self._assigned: set[int] = set()
        self._committed: dict[int, set[str]] = {}  # per partition taken: the items whose rows the state has
        self._by_category: dict[str, list[str]] = {}  # of the items this owner was told about
        self.applied = 0  # updates applied
        self.dropped = 0  # updates dropped as applied before (redeliveries and resends)
        self.initialised = 0  # new items started from their categories

    async def take(self, partition: int) -> list[ItemRow]:
        """Take a partition over: its committed rows replace the table's (returns them)."""
        rows = await self.state.owner_rows(partition)
        for row in rows:
            self.table.load_row(row, force=True)
        self._taken.add(partition)
        self._committed[partition] = {row.item_id for row in rows}
        if rows:
            log.info("item-updates partition %d taken over: %d item rows loaded", partition, len(rows))
        return rows

    @property
    def partitions(self) -> list[int]:
        """The item-updates partitions this owner is assigned now."""
        return sorted(self._assigned)

    @property
    def taken(self) -> set[int]:
        """The partitions whose rows this owner holds as the authoritative ones (loaded, then kept)."""
        return set(self._taken)

    def assign(self, partition: int) -> None:
        """The partition is this owner's now (its rows are taken over with its first update)."""
        self._assigned.add(partition)

    def release(self, partition: int) -> None:
        """The partition went to another owner: take it again (fresh rows) if it comes back."""
        self._taken.discard(partition)
        self._assigned.discard(partition)
        self._committed.pop(partition, None)

    async def apply(self, partition: int, updates: list[tuple[str, ItemUpdate | ItemInit]],
                    offsets: list[int] | None = None) -> list[ItemRow]:
        """Apply one partition's updates (entry id, update) in order; returns the changed rows,
        plus, on a take-over, every row of the partition (to publish again).

        ``offsets``: each update's offset on its item-updates partition, ascending (the owner's
        consumer); None when they came in process (:class:`DirectBus`). An update at or below the
        partition's last applied offset is a redelivery: dropped without looking its id up. The
        rest are dropped when their id was applied within the owner's dedupe window (an outbox
        resend: a new offset, the same id) or came earlier in the call. The commit stores the
        rows, the ids applied and the highest offset seen, refused if the offset moved meanwhile.
        """
        if offsets is not None and len(offsets) != len(updates):
            raise ValueError(f"item owner, partition {partition}: {len(offsets)} offsets for {len(updates)} updates; "
                             "each update needs its offset")
        republish: list[ItemRow] = []
        if partition not in self._taken:
            republish = await self.take(partition)
        while True:
            mark = await self.state.owner_offset(partition) if offsets else None
            after = mark
            dropped = 0  # counted once the pass commits (a refused one is computed again)
            candidates = []  # (entry id, update): not redeliveries
            for n, item in enumerate(updates):
                if offsets:
                    if mark is not None and offsets[n] <= mark:
                        dropped += 1
                        continue
                    after = offsets[n] if after is None else max(after, offsets[n])
                candidates.append(item)
            done = await self.state.owner_applied(partition, [e for e, _ in candidates]) if candidates else []
            fresh, seen = [], set()
            for (eid, upd), was in zip(candidates, done):
                if was or eid in seen:
                    dropped += 1
                    continue
                seen.add(eid)
                fresh.append((eid, upd))
            moved = None if after == mark else (mark, after)
            if not fresh and moved is None:
                self.dropped += dropped
                return republish
            now = self.clock()
            saved = self._first_states(partition, fresh)
            try:
                changed: set[int] = set()
                started = 0  # new items started by this pass (counted once it commits)
                run: list[ItemUpdate] = []  # consecutive updates, applied together (ItemTable.apply_many)
                for _, upd in fresh:
                    if isinstance(upd, ItemInit):
                        if run:
                            changed.update(self.table.apply_many(run, now))
                            run = []
                        r = self._init(upd, now)
                        if r is not None:
                            changed.add(r)
                            started += 1
                    else:
                        run.append(upd)
                if run:
                    changed.update(self.table.apply_many(run, now))
                rows = self.table.rows_at(sorted(changed)) if self.keep_rows else []
                # resends alone still move the offset, so a redelivery of them is dropped by it
                await self.state.owner_commit(partition, [e for e, _ in fresh], rows, moved)
            except Conflict as exc:  # another owner applied some meanwhile (a rebalance): start again
                log.warning("item-updates partition %d: %s; reloading its rows", partition, exc)
                self._undo(partition, saved)
                await self.take(partition)
                continue
            except BaseException:  # written or not (the connection lost): the retry starts from the state
                self._undo(partition, saved)
                raise
            if self.keep_rows:
                self._committed.setdefault(partition, set()).update(r.item_id for r in rows)
            self.applied += len(fresh)
            self.initialised += started
            self.dropped += dropped
            by_id = {r.item_id: r for r in republish}
            by_id.update({r.item_id: r for r in rows})
            return list(by_id.values())

    def _undo(self, partition: int, saved: dict[str, ItemRow]) -> None:
        """A pass over the partition did not commit, or may not have: the rows the state did not
        have go back to their states before it (``saved``), and the partition is taken over again
        before its next pass, which loads its rows as the state has them, written or not."""
        for row in saved.values():
            self.table.load_row(row, force=True)
        self._taken.discard(partition)

    def _first_states(self, partition: int, fresh) -> dict:
        """The rows a pass can change that the state does not have (no owner committed them yet),
        as they are before it: a refused pass puts them back (the rows the state has come back
        from it). Their rows are made now if they are new, as the pass would make them."""
        if not self.keep_rows:  # one process, the whole truth: no other owner to race with
            return {}
        committed = self._committed.get(partition, set())
        ids: set[str] = set()
        for _, upd in fresh:
            if isinstance(upd, ItemInit):
                ids.add(upd.item_id)
            else:  # the rows an update changes; a pair's neighbour (pair_b) is only a column of them
                ids.update(upd.names(np.unique(np.concatenate([upd.pop_idx, upd.count_idx, upd.pair_a]))))
                ids.update(upd.grads.item_ids)
        new = sorted(ids - committed)
        if not new:
            return {}
        return dict(zip(new, self.table.rows_at(self.table.rows(new))))

    def _init(self, init: ItemInit, now: float) -> int | None:
        like: list[str] = []
        for cat in init.categories:
            like += self._by_category.get(cat, [])[-self.CATEGORY_SAMPLE:]
        row = self.table.init_item(init.item_id, like, now)
        for cat in init.categories:
            members = self._by_category.setdefault(cat, [])
            if init.item_id not in members[-self.CATEGORY_SAMPLE:]:
                members.append(init.item_id)
                del members[: -4 * self.CATEGORY_SAMPLE]
        return row


class Gather:
    """An owner's windows: item updates held per partition until ``seconds`` have passed since
    the partition's first one, then applied together, so that a row many updates change is
    applied, committed and published once per window (STREAMREC_ITEM_PUBLISH_SECONDS).

    Partitions are taken one at a time, the longest-waiting first. With ``paced``, two takes are
    at least ``seconds / n`` apart, n the partitions that have had updates. So the owner's work
    is spread over the period in slices of one partition; it does not land all at once on the
    ingest batches that share its event loop. Once spread, the partitions stay staggered: each
    one's next window starts with its first update after it was taken.

    >>> now = [0.0]
    >>> g = Gather(0.4, clock=lambda: now[0])
    >>> g.add(1, "u1"); g.add(2, "v1"); g.add(1, "u2"); now[0] = 0.5
    >>> g.due(), g.take(), g.due()
    (True, {1: ['u1', 'u2']}, False)
    >>> now[0] = 0.75  # 0.4 s / 2 partitions: the next one from 0.2 s after the first was taken
    >>> g.due(), g.take(), g.due()
    (True, {2: ['v1']}, False)
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.held: dict[int, list] = {}
        self._start: dict[int, float] = {}  # partition -> when its first held update came
        self._taken_at: float | None = None
        self._partitions: set[int] = set()  # those that have had updates (and were not dropped since)

    def add(self, partition: int, item) -> None:
        self.held.setdefault(partition, []).append(item)
        self._partitions.add(partition)
        if partition not in self._start:
            self._start[partition] = self.clock()

    def drop(self, partition: int) -> None:
        """A partition revoked: its held updates are read again by its new owner."""
        self.held.pop(partition, None)
        self._start.pop(partition, None)
        self._partitions.discard(partition)

    def due(self, paced: bool = True) -> bool:
        """Whether a partition's window has passed (and, ``paced``, the last one taken was taken
        long enough ago)."""
        if not self._start:
            return False
        now = self.clock()
        if now - min(self._start.values()) < self.seconds:
            return False
        return not paced or self._taken_at is None or now - self._taken_at >= self.seconds / len(self._partitions)

    def take(self) -> dict[int, list]:
        """The longest-waiting partition's held updates, in order of arrival; its window starts again."""
        partition = min(self._start, key=self._start.__getitem__)
        del self._start[partition]
        self._taken_at = self.clock()
        return {partition: self.held.pop(partition)}


class ItemCopy:
    """Takes item rows published by their owners into this process's table."""

    def __init__(self, table: ItemTable) -> None:
        self.table = table
        self.read = 0  # rows read
        self.own = 0  # rows of partitions this worker owns, seen on the topic and passed over
        self.applied = 0  # of which newer than the copy (an owner's own rows come back as old news)
        self.invalid = 0

    def apply(self, values: list[bytes | None]) -> list[ItemRow]:
        """Decode and take rows; returns the rows taken. Malformed ones are counted and skipped."""
        taken = []
        for value in values:
            if value is None:
                continue
            try:
                row = decode_row(value)
            except ValueError as exc:
                self.invalid += 1
                if self.invalid <= 10 or self.invalid % 1000 == 0:
                    log.warning("ignored an item-factors message (%d so far): %s", self.invalid, exc)
                continue
            self.read += 1
            try:
                if self.table.load_row(row):
                    taken.append(row)
            except ValueError as exc:  # e.g. rows of another factor count
                self.invalid += 1
                if self.invalid <= 10 or self.invalid % 1000 == 0:
                    log.warning("ignored an item row (%d so far): %s", self.invalid, exc)
        self.applied += len(taken)
        return taken


class ItemBus(ABC):
    """Delivers a committed batch's item updates to their owners."""

    @abstractmethod
    async def deliver(self, entries: list[OutboxEntry]) -> None:
        """Hand the entries to their owners; they leave the outbox once delivered (at once, or at
        :meth:`settle`)."""

    async def settle(self, flush: Callable[[], Awaitable[None]]) -> None:
        """``flush()`` (the caller's wait for what it sent), then mark done in the outbox what
        :meth:`deliver` sent for the calling task and the flush confirmed. Buses that apply at
        once have nothing to mark."""
        await flush()


class DirectBus(ItemBus):
    """In process: the owner applies each entry at once (offline evaluation, tests)."""

    def __init__(self, owner: ItemOwner) -> None:
        self.owner = owner

    async def deliver(self, entries: list[OutboxEntry]) -> None:
        by_part: dict[int, list] = {}
        for e in entries:
            update = e.update if e.update is not None else decode_update(e.payload)[1]
            by_part.setdefault(e.partition, []).append((e.entry_id, update))
        for partition, updates in sorted(by_part.items()):
            await self.owner.apply(partition, updates)
        if entries:
            await self.owner.state.outbox_done([e.entry_id for e in entries])


class KafkaBus(ItemBus):
    """In the worker: each entry goes to its owner's item-updates partition; once Kafka has it,
    it leaves the outbox. :meth:`sweep` sends again what a crash (or a broker outage) left there.

    :meth:`deliver` only sends: the calling task's :meth:`settle` waits for delivery (the flush
    that also covers the batch's lists and dead letters: one wait a batch, after its commit) and
    then takes the entries out of the outbox. Entries whose flush failed, or that were never
    settled, stay in the outbox and are sent again by :meth:`sweep`.

    ``publisher``: has ``item_update(partition, payload)`` and ``flush()`` (which waits for the
    calling task's messages and raises when one was not delivered).
    """

    def __init__(self, publisher, state: StateStore) -> None:
        self.publisher = publisher
        self.state = state
        self.resent = 0
        self._sent: dict[asyncio.Task | None, list[str]] = {}  # per task: entry ids sent, not yet settled

    async def deliver(self, entries: list[OutboxEntry]) -> None:
        if not entries:
            return
        sent = self._sent.setdefault(asyncio.current_task(), [])
        for e in entries:
            await self.publisher.item_update(e.partition, e.payload)
            sent.append(e.entry_id)

    async def settle(self, flush: Callable[[], Awaitable[None]]) -> None:
        ids = self._sent.pop(asyncio.current_task(), None)  # taken first: a failed flush leaves them in the outbox
        await flush()
        if ids:
            await self.state.outbox_done(ids)

    async def sweep(self, older_than: float) -> int:
        """Deliver the entries committed before ``older_than`` and still in the outbox."""
        entries = await self.state.outbox_pending(older_than)
        if entries:
            log.info("delivering %d item updates left in the outbox", len(entries))
            await self.deliver(entries)
            await self.settle(self.publisher.flush)
            self.resent += len(entries)
        return len(entries)
