"""Item updates leaving the user side (stream/engine/items.py): their ids and their outbox entries."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

from stream.engine.items import Gather, KafkaBus, entry_id, outbox_entries
from stream.engine.messages import decode_update
from stream.engine.publisher import DeliveryError
from stream.models.items import ItemUpdate
from stream.models.sharded import item_partition
from stream.state.base import OutboxEntry


def test_entry_id_is_stable_and_names_the_events_and_the_partition():
    ids = ["e1", "e2", "e3"]
    assert entry_id(ids, 2) == entry_id(list(ids), 2)
    assert re.fullmatch(r"[0-9a-f]{24}/2", entry_id(ids, 2))
    others = {entry_id(ids, 3), entry_id(["e1", "e2"], 2), entry_id(["e3", "e2", "e1"], 2), entry_id(["e1e2", "e3"], 2)}
    assert entry_id(ids, 2) not in others and len(others) == 4


def test_outbox_entries_are_one_per_owner_with_their_ids_and_payloads():
    u = ItemUpdate.empty(2)
    items = [f"i{n}" for n in range(12)]
    u.add_pairs(items, items[1:] + items[:1], [1.0] * 12)
    u.add_counts(items, [1.0] * 12)
    event_ids = ["e1", "e2"]
    entries = outbox_entries(u, event_ids, 3, 2)
    owners = sorted({item_partition(i, 3) for i in items})
    assert [e.partition for e in entries] == owners
    assert [e.entry_id for e in entries] == [entry_id(event_ids, p) for p in owners]
    total = 0
    for e in entries:
        eid, decoded = decode_update(e.payload)  # the bytes are the message the owner reads
        assert eid == e.entry_id
        assert all(item_partition(a, 3) == e.partition for a in decoded.names(decoded.pair_a))
        np.testing.assert_array_equal(decoded.pair_w, e.update.pair_w)
        total += len(decoded.pair_a)
    assert total == 12
    assert outbox_entries(ItemUpdate.empty(2), event_ids, 3, 2) == []


class _Publisher:
    """KafkaPublisher's calls, recorded: what each task sent, and a flush that can fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes]] = []
        self.fail = False
        self.flushes = 0

    async def item_update(self, partition: int, payload: bytes) -> None:
        self.sent.append((partition, payload))

    async def flush(self) -> None:
        self.flushes += 1
        if self.fail:
            raise DeliveryError("1 of 1 messages failed")


class _Outbox:
    def __init__(self, entries) -> None:
        self.entries = {e.entry_id: e for e in entries}

    async def outbox_done(self, entry_ids) -> None:
        for eid in entry_ids:
            self.entries.pop(eid, None)

    async def outbox_pending(self, older_than: float):
        return list(self.entries.values())


def _bus(n: int) -> tuple[_Publisher, list[OutboxEntry], _Outbox, KafkaBus]:
    """A KafkaBus over a recording publisher, and ``n`` entries already in its outbox."""
    pub = _Publisher()
    entries = [OutboxEntry(f"u{j}/{j % 2}", j % 2, f"payload {j}".encode()) for j in range(n)]
    box = _Outbox(entries)
    return pub, entries, box, KafkaBus(pub, box)


def _run(fn):
    """A test of the coroutine function ``fn`` (run in a loop of its own)."""
    def test():
        asyncio.run(fn())
    test.__name__ = test.__qualname__ = fn.__name__
    return test


@_run
async def test_kafka_bus_sends_at_deliver_and_empties_the_outbox_only_after_the_flush():
    pub, entries, box, bus = _bus(3)
    await bus.deliver(entries)
    assert pub.sent == [(0, b"payload 0"), (1, b"payload 1"), (0, b"payload 2")]
    assert pub.flushes == 0 and len(box.entries) == 3  # sent, not yet known to be delivered
    await bus.settle(pub.flush)
    assert pub.flushes == 1 and box.entries == {}
    await bus.settle(pub.flush)  # nothing left to mark: the flush is still the caller's
    assert pub.flushes == 2


@_run
async def test_kafka_bus_keeps_entries_whose_flush_failed_for_the_sweep():
    pub, entries, box, bus = _bus(2)
    await bus.deliver(entries)
    pub.fail = True
    with pytest.raises(DeliveryError):
        await bus.settle(pub.flush)
    pub.fail = False
    await bus.settle(pub.flush)  # a later batch's settle does not take the failed ones for delivered
    assert set(box.entries) == {e.entry_id for e in entries}
    assert await bus.sweep(0.0) == 2  # sent again, and this time delivered
    assert box.entries == {} and bus.resent == 2 and len(pub.sent) == 4


@_run
async def test_kafka_bus_settles_each_task_s_own_entries():
    pub, entries, box, bus = _bus(4)
    await asyncio.create_task(bus.deliver(entries[:2]))  # another task's, never settled
    await bus.deliver(entries[2:])
    await bus.settle(pub.flush)
    assert set(box.entries) == {entries[0].entry_id, entries[1].entry_id}


def _simulate_owner(seconds: float, partitions: int, run: float, tick: float = 0.01, every: float = 0.06,
                    paced: bool = True):
    """The owner's loop against a clock: every ``every`` s a batch sends an update to each
    partition; every ``tick`` s the loop takes what is due. Returns (take time, partition, the
    ages of its updates) for each take."""
    now = [0.0]
    g = Gather(seconds, clock=lambda: now[0])
    takes, next_batch = [], 0.0
    while now[0] < run:
        if now[0] >= next_batch:
            for p in range(partitions):
                g.add(p, now[0])
            next_batch += every
        while g.due(paced):
            (p, sent), = g.take().items()
            takes.append((now[0], p, [now[0] - t for t in sent]))
            if paced:
                break  # the worker's loop applies one partition, then reads again
        now[0] = round(now[0] + tick, 6)
    return takes


def test_the_owner_takes_one_partition_at_a_time_spread_over_its_period():
    """The owner's work lands in slices of one partition, about seconds / partitions apart, not
    all at once; each partition is still applied once a period, and no update waits much longer."""
    seconds, parts = 0.5, 4
    takes = _simulate_owner(seconds, parts, run=10.0)
    steady = [t for t in takes if t[0] > 2.0]
    gaps = [b[0] - a[0] for a, b in zip(steady, steady[1:])]
    assert min(gaps) >= seconds / parts - 1e-9, gaps
    assert max(gaps) <= seconds / parts + 0.07, gaps  # a tick and a batch at most
    for p in range(parts):
        times = [t for t, q, _ in steady if q == p]
        periods = [b - a for a, b in zip(times, times[1:])]
        assert periods and all(seconds <= d <= seconds + 0.07 for d in periods), (p, periods)
    oldest = max(max(ages) for _, _, ages in takes)
    assert oldest <= seconds + seconds * (parts - 1) / parts + 0.02, oldest  # the first round's last partition
    assert max(max(ages) for _, _, ages in steady) <= seconds + 0.07


def test_unpaced_the_owner_takes_every_partition_whose_window_passed():
    """The in-process bench (WindowBus) looks once a batch: it takes all that is due at once."""
    takes = _simulate_owner(0.5, 4, run=2.0, paced=False)
    first = [t for t in takes if t[0] == takes[0][0]]
    assert sorted(p for _, p, _ in first) == [0, 1, 2, 3]


def test_a_dropped_partition_leaves_the_window_and_the_pace():
    now = [0.0]
    g = Gather(0.4, clock=lambda: now[0])
    g.add(1, "a"), g.add(2, "b")
    g.drop(2)  # revoked: its new owner reads it again
    now[0] = 0.5
    assert g.take() == {1: ["a"]}
    g.add(1, "c")
    now[0] = 0.95  # one partition left: paced a whole period apart
    assert g.due() and g.take() == {1: ["c"]} and not g.held and not g.due()
