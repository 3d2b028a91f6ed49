"""Erasing a user, in both states (memory and a real Redis): every key of the user goes and a marker
stays; the user's events at or before the erasure never bring them back (late, on another topic,
resent after the dedupe window, in a batch that was loaded before the erasure and committed after
it), nor does a profile; a later event starts a new user; a repeated request erases nothing more;
and what the state keeps of event ids and erased users are keyed hashes, never the ids."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stream.contract import validate_event
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.items import DirectBus, ItemOwner
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.state.base import Erasure
from stream.state.keys import Keys
from stream.state.memory import MemoryState
from stream.state.redis import RedisState
from tests.helpers import Clock, redis_of
from tests.scan import redis_contents

pytestmark = pytest.mark.integration

CONFIG = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4}), rerank=None, behaviour=None, explore_share=0.0)
USER = "erase.me+7f3a@example.org"


def _event(kind: str, event_id: str, user: str, item: str, ts: float):
    extra = {"seconds": 40.0} if kind == "dwell" else {}
    return validate_event(kind, {"event_id": event_id, "user_id": user, "item_id": item, "ts": ts, "schema": "v1",
                                 **extra})


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def make_state(request, isolated):
    """(make the state inside the test's event loop, the traces it keeps as bytes)."""
    where = redis_of(request.param, request)
    prefix = f"{where.redis_prefix}:{uuid.uuid4().hex[:6]}"

    def make(clock):
        if request.param == "memory":
            return MemoryState()
        return RedisState(where.redis_client(asyncio=True), Keys(prefix), n_factors=4,
                          dedupe_ttl_seconds=60, clock=clock, marker_ttl_seconds=3600)

    def traces(store) -> list[tuple[str, bytes]]:
        """Everything the state holds, as (where, bytes): Redis by a type-aware scan of the prefix,
        memory by its dicts' keys and values."""
        if request.param != "memory":
            return [(s.where, part) for s in redis_contents(where.model_copy(update={"redis_prefix": prefix}))
                    for part in s.parts]
        held = [("claimed", t.encode()) for t in store.claimed] + [("markers", repr(store.markers).encode())]
        for name in ("user_records", "profiles", "lists", "users_seen"):
            held += [(name, repr(x).encode()) for x in getattr(store, name)]
        return held
    return make, traces


def _engine(state) -> Engine:
    table = ItemTable(CONFIG.hybrid)
    return Engine(CONFIG, state, table, DirectBus(ItemOwner(table, state, clock=lambda: 1.0)), clock=lambda: 1.0)


def test_an_erased_user_is_gone_and_stays_gone_until_a_later_event(make_state):
    make, traces = make_state
    clock = Clock()

    async def run():
        store = make(clock)
        engine = _engine(store)
        assert await engine.apply_profile(USER, {"segment": "readers"}, 1.0) == ("segment:readers", None)
        await engine.step([_event("click", f"{USER}-click-1", USER, "x", 10.0),
                           _event("dwell", f"{USER}-dwell-1", USER, "x", 11.0),
                           _event("click", "keep-1", "keep", "y", 12.0)],
                          [("clicks", 0, 1), ("dwell", 0, 1), ("clicks", 1, 1)])
        await store.save_lists({USER: f'{{"user_id": "{USER}"}}'.encode(), "keep": b'{"user_id": "keep"}'})
        before = await store.users([USER])
        assert before[USER].events == 2 and before[USER].row is not None and before[USER].profile_segment
        assert any(USER.encode() in part for _, part in traces(store)), "the scan must see the user before"

        assert await store.erase(USER, 20.0) == Erasure("erased", 20.0, True)
        gone = (await store.users([USER]))[USER]
        assert (gone.events, gone.row, gone.history, len(gone.seen), gone.profile_segment, gone.erased_at) == \
            (0, None, [], 0, None, 20.0)
        assert (await store.last_lists([USER, "keep"])) == {USER: None, "keep": b'{"user_id": "keep"}'}
        assert (await store.users(["keep"]))["keep"].events == 1  # only that user
        # a list made before the erasure and saved after it (a push in flight) is not kept
        await store.save_lists({USER: f'{{"user_id": "{USER}"}}'.encode()})
        assert (await store.last_lists([USER]))[USER] is None
        left = [where for where, part in traces(store) if USER.encode() in part]
        assert not left, f"the erased user's id is still in {left}"

        # late, on another topic, at or before the erasure: dropped, counted, never applied
        late = await engine.step([_event("dwell", f"{USER}-dwell-2", USER, "z", 15.0),
                                  _event("click", f"{USER}-click-3", USER, "z", 20.0)],
                                 [("dwell", 0, 2), ("clicks", 0, 2)])
        assert (late.fresh, late.erased, late.dropped, late.duplicates) == ([False, False], [True, True], 2, 0)
        # a resend of an applied event after the dedupe window (a new offset): not applied either
        clock.now += 7200.0
        resend = await engine.step([_event("click", f"{USER}-click-1", USER, "x", 10.0)], [("clicks", 0, 3)])
        assert resend.fresh == [False]  # memory never forgets ids (a duplicate), Redis does (erased)
        assert await engine.apply_profile(USER, {"segment": "readers"}, 19.0) is None  # a profile from before
        still = (await store.users([USER]))[USER]
        assert (still.events, still.row, still.profile_segment) == (0, None, None)
        assert not [where for where, part in traces(store) if USER.encode() in part]

        # after the erasure: a new user, who a repeated request leaves alone
        new = await engine.step([_event("click", f"{USER}-click-4", USER, "w", 21.0)], [("clicks", 0, 4)])
        assert new.fresh == [True]
        assert await engine.apply_profile(USER, {"segment": "kids"}, 22.0) == ("segment:kids", None)
        assert await store.erase(USER, 20.0) == Erasure("already_erased", 20.0, False)
        assert await store.erase(USER, 5.0) == Erasure("already_erased", 20.0, False)
        fresh = (await store.users([USER]))[USER]
        assert (fresh.events, fresh.history, fresh.profile_segment) == (1, ["w"], "segment:kids")
        assert fresh.row is not None and fresh.row.n == 1.0  # learned from that one event only
        # a later erasure erases the new user too
        assert await store.erase(USER, 30.0) == Erasure("erased", 30.0, True)
        assert (await store.users([USER]))[USER].events == 0
        await store.close()

    asyncio.run(run())


def test_an_erasure_between_a_batchs_load_and_commit_makes_the_commit_conflict(make_state):
    make, _ = make_state

    async def run():
        store = make(Clock())
        engine = _engine(store)
        erased = []
        load = store.load

        async def load_then_erase(*args, **kwargs):  # another task erases the user right after the load
            loaded = await load(*args, **kwargs)
            if not erased:
                erased.append(await store.erase(USER, 15.0))
            return loaded

        store.load = load_then_erase
        result = await engine.step([_event("click", f"{USER}-1", USER, "x", 10.0),
                                    _event("dwell", f"{USER}-2", USER, "x", 11.0),
                                    _event("click", f"{USER}-3", USER, "y", 16.0),
                                    _event("click", "keep-1", "keep", "y", 12.0)])
        assert erased == [Erasure("erased", 15.0, False)]
        assert result.attempts == 2  # the first commit was refused: the marker appeared after its load
        assert [e.event_id for e in result.events] == [f"{USER}-1", f"{USER}-2", "keep-1", f"{USER}-3"]  # by ts
        assert (result.fresh, result.erased) == ([False, False, True, True], [True, True, False, False])
        after = (await store.users([USER, "keep"]))
        assert (after[USER].events, after[USER].history) == (1, ["y"])  # only the event after the erasure
        assert after["keep"].events == 1
        await store.close()

    asyncio.run(run())


def test_event_ids_are_kept_as_keyed_hashes_and_still_catch_resends(make_state):
    make, traces = make_state

    async def run():
        store = make(Clock())
        engine = _engine(store)
        ids = [f"ml100k-{USER}-{n}-click" for n in range(5)]
        events = [_event("click", e, "someone", f"i{n}", float(n)) for n, e in enumerate(ids)]
        await engine.step(events)
        assert not [where for where, part in traces(store) if b"ml100k-" in part], "a raw event id is kept"
        again = await engine.step([_event("click", ids[2], "someone", "i2", 2.0)])  # a resend, same id
        assert again.fresh == [False] and again.duplicates == 1
        await store.close()

    asyncio.run(run())
