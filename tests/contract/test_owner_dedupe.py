"""What an item owner applied before, in both states (memory and a real Redis), as the user side
keeps it: a redelivery of item-updates is caught by its partition's last applied offset (without
looking its id up), an outbox resend (a new offset, the same id) by its id within the owner's
dedupe window, and an owner commit computed from an offset that moved meanwhile is refused."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stream.engine.items import ItemOwner
from stream.engine.messages import encode_row
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable, ItemUpdate
from stream.state.base import Conflict
from stream.state.keys import Keys
from stream.state.memory import MemoryState
from stream.state.redis import RedisState
from tests.helpers import Clock, redis_of, user_side_update

pytestmark = pytest.mark.integration

PARAMS = HybridParams(mf={"n_factors": 4, "learning_rate": 0.2, "n_negatives": 0, "seed": 1})
WINDOW = 120  # the owners' dedupe window in these tests (STREAMREC_OWNER_DEDUPE_SECONDS)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def make_state(request, isolated):
    """Makes the state inside the test's event loop (a Redis client belongs to one loop); both read
    the test's clock (the memory state's ``clock`` is a value the test moves with :func:`_at`)."""
    where = redis_of(request.param, request)

    def make(clock: Clock):
        if request.param == "memory":
            state = MemoryState(owner_dedupe_seconds=WINDOW)
            state.clock = clock.now
            return state
        return RedisState(where.redis_client(asyncio=True),
                          Keys(f"{where.redis_prefix}:{uuid.uuid4().hex[:6]}"), n_factors=4,
                          owner_dedupe_seconds=WINDOW, clock=clock)
    return make


def _at(store, clock: Clock, now: float) -> None:
    clock.now = now
    if isinstance(store, MemoryState):
        store.clock = now


def _update(items=("a", "b"), user="u") -> ItemUpdate:
    return user_side_update(PARAMS, items, user)


def _snapshot(table: ItemTable) -> dict:
    return {table.item_ids[r]: encode_row(table.row(r)) for r in range(table.n_items)}


def _spy(store) -> list[list[str]]:
    """Records the ids each owner_applied call looks up."""
    asked: list[list[str]] = []
    real = store.owner_applied

    def owner_applied(partition, entry_ids):
        asked.append(list(entry_ids))
        return real(partition, entry_ids)

    store.owner_applied = owner_applied
    return asked


def test_a_redelivery_is_dropped_by_its_offset_without_an_id_lookup(make_state):
    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        table = ItemTable(PARAMS)
        owner = ItemOwner(table, store, clock=lambda: 7.0)
        u1, u2 = _update(("a", "b")), _update(("b", "c"), user="v")
        await owner.apply(0, [("e1/0", u1), ("e2/0", u2)], [10, 11])
        assert (owner.applied, owner.dropped) == (2, 0) and await store.owner_offset(0) == 11
        after = _snapshot(table)
        asked = _spy(store)
        # Kafka redelivers both (a crash before the consumer's commit), and one older record
        assert await owner.apply(0, [("e0/0", u1), ("e1/0", u1), ("e2/0", u2)], [9, 10, 11]) == []
        assert _snapshot(table) == after and (owner.applied, owner.dropped) == (2, 3)
        assert asked == []  # dropped by the offset: no id was looked up
        # long after the ids' window, the offset still drops a redelivery
        _at(store, clock, 1000.0 + 10 * WINDOW)
        assert await owner.apply(0, [("e1/0", u1)], [10]) == []
        assert _snapshot(table) == after and owner.applied == 2
        # another partition's offsets are its own
        assert await store.owner_offset(1) is None
        await owner.apply(1, [("e3/1", _update(("x", "y")))], [10])
        assert owner.applied == 3 and await store.owner_offset(1) == 10
        await store.close()

    asyncio.run(run())


def test_an_outbox_resend_within_the_window_is_dropped_and_one_beyond_it_is_applied_again(make_state):
    """The cost of the bounded window, stated in STREAMREC_OWNER_DEDUPE_SECONDS' description: an
    update resent after its id was forgotten is applied a second time."""
    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        table = ItemTable(PARAMS)
        owner = ItemOwner(table, store, clock=lambda: 7.0)
        u = _update(("a", "b"))
        await owner.apply(0, [("e1/0", u)], [5])
        once = _snapshot(table)
        n_once = float(table.cooc.n[table.get("a")])
        # the outbox sends it again (its delivery was not confirmed): the same id at a new offset
        _at(store, clock, 1000.0 + WINDOW - 1)
        asked = _spy(store)
        assert await owner.apply(0, [("e1/0", u)], [6]) == []
        assert asked == [["e1/0"]] and _snapshot(table) == once and (owner.applied, owner.dropped) == (1, 1)
        assert await store.owner_offset(0) == 6  # a resend alone still moves the offset...
        assert await owner.apply(0, [("e1/0", u)], [6]) == [] and asked == [["e1/0"]]  # ...so its redelivery
        # is dropped without a look-up; without offsets (the in-process buses) the id alone still drops it
        assert await owner.apply(0, [("e1/0", u)]) == [] and _snapshot(table) == once
        # beyond the window (a broker outage longer than it), a resend is applied a second time
        _at(store, clock, 1000.0 + 2 * WINDOW)
        rows = await owner.apply(0, [("e1/0", u)], [7])
        assert sorted(r.item_id for r in rows) == ["a", "b"] and owner.applied == 2
        assert float(table.cooc.n[table.get("a")]) == 2 * n_once
        await store.close()

    asyncio.run(run())


def test_an_owner_commit_from_a_stale_offset_is_refused_and_writes_nothing(make_state):
    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        await store.owner_commit(0, ["x/0"], [], (None, 3))
        assert await store.owner_offset(0) == 3
        with pytest.raises(Conflict):  # computed before x/0 was applied: offset None as loaded
            await store.owner_commit(0, ["y/0"], [], (None, 4))
        with pytest.raises(Conflict):  # an offset from further back
            await store.owner_commit(0, ["y/0"], [], (2, 4))
        assert await store.owner_offset(0) == 3 and await store.owner_applied(0, ["y/0"]) == [False]
        with pytest.raises(Conflict):  # the offset as loaded, but an id applied meanwhile
            await store.owner_commit(0, ["x/0", "y/0"], [], (3, 4))
        assert await store.owner_offset(0) == 3 and await store.owner_applied(0, ["x/0", "y/0"]) == [True, False]
        await store.owner_commit(0, ["y/0"], [], (3, 4))
        assert await store.owner_offset(0) == 4 and await store.owner_applied(0, ["x/0", "y/0"]) == [True, True]
        # no offset (an in-process bus): ids only, the offset left as it is
        await store.owner_commit(0, ["z/0"], [])
        assert await store.owner_offset(0) == 4 and await store.owner_applied(0, ["z/0"]) == [True]
        await store.close()

    asyncio.run(run())


async def _race(store, u2: ItemUpdate | None = None):
    """This owner loads partition 0's offset; right then another owner (a zombie, a rebalance)
    applies offset 20 (u1); this owner applies u1 (20) and u2 (21). Returns its table, the table
    of one owner applying both, and the owner."""
    table = ItemTable(PARAMS)
    owner = ItemOwner(table, store, clock=lambda: 7.0)
    u1, u2 = _update(("a", "b")), u2 or _update(("b", "c"), user="v")
    real = store.owner_offset
    raced = []

    async def owner_offset(partition):
        loaded = await real(partition)
        if not raced:
            raced.append(True)
            other = ItemOwner(ItemTable(PARAMS), store, clock=lambda: 7.0)
            await other.apply(partition, [("e1/0", u1)], [20])
        return loaded

    store.owner_offset = owner_offset
    await owner.apply(0, [("e1/0", u1), ("e2/0", u2)], [20, 21])
    alone = ItemTable(PARAMS)
    await ItemOwner(alone, MemoryState(), clock=lambda: 7.0).apply(0, [("e1/0", u1), ("e2/0", u2)], [20, 21])
    return table, alone, owner, real


def test_an_owner_racing_another_computes_again_from_the_new_offset(make_state):
    """The refused commit is computed again from the new offset: u1 dropped by it, u2 applied; the
    rows the other owner committed are taken again."""
    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        table, alone, owner, offset = await _race(store)
        assert (owner.applied, owner.dropped) == (1, 1) and await offset(0) == 21
        mine, expected = _snapshot(table), _snapshot(alone)
        assert {i: mine[i] for i in ("a", "b")} == {i: expected[i] for i in ("a", "b")}  # each applied once
        await store.close()

    asyncio.run(run())


def test_a_refused_owner_pass_leaves_no_trace_in_rows_the_state_does_not_have(make_state):
    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        table, alone, _, _ = await _race(store)
        assert _snapshot(table)["c"] == _snapshot(alone)["c"]
        await store.close()

    asyncio.run(run())


def test_a_refused_pass_restores_rows_it_changed_by_counts_pairs_or_popularity_alone(make_state):
    """Rows the refused pass changed without a gradient (d: a pair, g: a count, e: popularity)
    are put back too; f, only a pair's neighbour there, is a column, not a changed row."""
    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        u2 = ItemUpdate.empty(4)
        u2.add_pairs(["d"], ["f"], [1.0])
        u2.add_counts(["g"], [1.0])
        u2.add_popularity(["e"], [2.0], ref=5.0)
        table, alone, _, _ = await _race(store, u2)
        mine, expected = _snapshot(table), _snapshot(alone)
        assert {i: mine[i] for i in "defg"} == {i: expected[i] for i in "defg"}
        await store.close()

    asyncio.run(run())


def _first():
    """A first pass of partition 0, (updates, offsets), whose rows (a, d) the state then has."""
    return [("e0/0", _update(("a", "d"), user="w"))], [19]


async def _alone(*passes) -> ItemTable:
    """The table of one owner applying these (updates, offsets) passes of partition 0, nothing failing."""
    table = ItemTable(PARAMS)
    owner = ItemOwner(table, MemoryState(), clock=lambda: 7.0)
    for updates, offsets in passes:
        await owner.apply(0, updates, offsets)
    return table


@pytest.mark.parametrize("written", [False, True], ids=["lost-before-writing", "lost-after-writing"])
def test_an_owner_commit_whose_outcome_is_unknown_applies_each_update_once_when_retried(make_state, written):
    """A commit that raises (the connection dropped: written or not, the owner cannot tell) leaves
    nothing of its pass in the table but what the state has; the retry applies each update once
    and returns the rows (to publish) either way."""
    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        table = ItemTable(PARAMS)
        owner = ItemOwner(table, store, clock=lambda: 7.0)
        batch = [("e1/0", _update(("a", "b"))), ("e2/0", _update(("b", "c"), user="v"))]
        await owner.apply(0, *_first())  # rows the state has: a, d
        real = store.owner_commit
        calls = []

        async def owner_commit(*args):
            calls.append(args[0])
            if len(calls) == 1:
                if written:
                    await real(*args)
                raise ConnectionError("connection lost")
            return await real(*args)

        store.owner_commit = owner_commit
        with pytest.raises(ConnectionError):
            await owner.apply(0, batch, [20, 21])
        rows = await owner.apply(0, batch, [20, 21])  # what the worker's retry does
        assert {r.item_id for r in rows} >= {"a", "b", "c"}  # published, whether the lost pass was written or not
        alone = await _alone(_first(), (batch, [20, 21]))
        assert _canonical(table) == _canonical(alone) and await store.owner_offset(0) == 21
        await store.close()

    asyncio.run(run())


def _canonical(table: ItemTable) -> dict:
    """Each item's row, its neighbours by key (not in the table's row order, which is the process's own)."""
    from stream.engine.messages import decode_row

    out = {}
    for r in range(table.n_items):
        row = decode_row(encode_row(table.row(r)))
        out[row.item_id] = (row.mf.vector.tolist(), row.mf.bias, row.mf.version, row.mf.acc, row.n, row.popularity,
                            sorted(zip(row.neighbour_keys.tolist(), row.counts.tolist())))
    return out



def test_a_new_item_is_counted_once_when_its_pass_is_refused_and_computed_again(make_state):
    from stream.engine.messages import ItemInit

    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        owner = ItemOwner(ItemTable(PARAMS), store, clock=lambda: 7.0)
        await owner.apply(0, [("e0/0", _update(("a", "b")))], [10])
        owner._by_category["books"] = ["a"]
        real, refused = store.owner_commit, []

        async def owner_commit(*args):
            if not refused:
                refused.append(True)
                raise Conflict("another owner applied some meanwhile")
            return await real(*args)

        store.owner_commit = owner_commit
        rows = await owner.apply(0, [("init:n", ItemInit("n", ["books"]))], [11])
        assert [r.item_id for r in rows] == ["n"] and (owner.initialised, owner.applied) == (1, 2)
        await store.close()

    asyncio.run(run())


def test_a_pass_that_fails_while_applying_is_undone_and_applied_once_by_the_retry(make_state):
    """An error half-way through a pass (here right after the updates were applied): the
    partition is taken over again before its next pass, and the retry applies each update once."""
    clock = Clock(1000.0)

    async def run():
        store = make_state(clock)
        table = ItemTable(PARAMS)
        owner = ItemOwner(table, store, clock=lambda: 7.0)
        await owner.apply(0, *_first())
        batch = [("e1/0", _update(("a", "b"))), ("e2/0", _update(("b", "c"), user="v"))]
        real = table.apply_many

        def apply_many(updates, now):
            table.apply_many = real
            real(updates, now)
            raise MemoryError("no room for the rows")

        table.apply_many = apply_many
        with pytest.raises(MemoryError):
            await owner.apply(0, batch, [20, 21])
        assert 0 not in owner.taken  # its rows come back from the state before the next pass
        await owner.apply(0, batch, [20, 21])
        alone = await _alone(_first(), (batch, [20, 21]))
        assert _canonical(table) == _canonical(alone)
        await store.close()

    asyncio.run(run())
