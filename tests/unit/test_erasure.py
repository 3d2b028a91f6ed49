"""Erasure in the worker, without Kafka or Redis: the request contract and its dead letters, the
Eraser over the real engine and MemoryState (the user's state, their pending list and the
pusher's memory of them go; a tombstone and a reply without the user id go out; a repeat is
answered already_erased), the wait for a batch in flight, the events dropped afterwards, and the
settings of the erasure key and the marker lifetime."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError

from stream.config import Settings
from stream.contract import InvalidEvent, encode, make_event
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.erase import Eraser, validate_erasure_records
from stream.engine.ingest import Ingest
from stream.engine.items import DirectBus, ItemOwner
from stream.engine.push import Pusher
from stream.engine.validate import Record
from stream.erasure import done_message, request_message, validate_erasure_request
from stream.metrics import build
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.state.memory import MemoryState

CONFIG = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4, "seed": 1}), rerank=None, behaviour=None,
                      explore_share=0.0, top_k=3, partitions=1)
USER = "mallory.erased@example.org"


class Sink:
    def __init__(self):
        self.dead, self.recs, self.tombstones, self.done, self.flushes = [], [], [], [], 0

    async def dead_letter(self, record, reason, detail):
        self.dead.append((record, reason, detail))

    async def recommendations(self, user_id, payload):
        self.recs.append(user_id)

    async def drift_alert(self, segment, payload):
        pass

    async def user_tombstone(self, user_id):
        self.tombstones.append(user_id)

    async def erasure_done(self, request_id, payload):
        self.done.append((request_id, payload))

    async def flush(self):
        self.flushes += 1


def _worker(interval=0.0):
    state = MemoryState()
    table = ItemTable(CONFIG.hybrid)
    clock = lambda: 0.0  # noqa: E731
    engine = Engine(CONFIG, state, table, DirectBus(ItemOwner(table, state, clock=clock, keep_rows=False)), clock=clock)
    sink, metrics = Sink(), build()
    pusher = Pusher(engine, sink, metrics, top_k=3, min_interval=interval, clock=clock)
    ingest = Ingest(engine, pusher, sink, metrics, topic_types={"clicks": "click"}, retry_delays=(0.0,))
    return Eraser(ingest, clock=lambda: 99.0), ingest, state, sink


def _click(n, user=USER, ts=None):
    value = encode(make_event("click", event_id=f"{user}-{n}", user_id=user, item_id=f"i{n}",
                              ts=float(n) if ts is None else ts))
    return Record("clicks", 0, n, user.encode(), value)


def _request(offset, request_id="r1", user=USER, ts=50.0, key=None):
    return Record("user-erasures", 0, offset, (key or user).encode(), request_message(request_id, user, ts))


@pytest.mark.parametrize("body, reason", [
    ({"request_id": "r", "user_id": "u", "ts": 1.0}, "missing_field"),  # no schema
    ({"schema": "v2", "request_id": "r", "user_id": "u", "ts": 1.0}, "bad_schema"),
    ({"schema": "v1", "user_id": "u", "ts": 1.0}, "missing_field"),
    ({"schema": "v1", "request_id": "r", "user_id": 7, "ts": 1.0}, "wrong_type"),
    ({"schema": "v1", "request_id": "r", "user_id": "", "ts": 1.0}, "out_of_range"),
    ({"schema": "v1", "request_id": "r", "user_id": "u"}, "missing_field"),
    ({"schema": "v1", "request_id": "r", "user_id": "u", "ts": -1.0}, "out_of_range"),
    ({"schema": "v1", "request_id": "r", "user_id": "u", "ts": "now"}, "wrong_type"),
    ([], "not_object"),
])
def test_a_bad_request_names_its_reason(body, reason):
    with pytest.raises(InvalidEvent) as bad:
        validate_erasure_request(json.dumps(body).encode())
    assert bad.value.reason == reason


def test_bad_records_are_dead_lettered_with_a_reason_that_names_no_user():
    records = [Record("user-erasures", 0, 0, b"u1", b"{oops"), _request(1, key="someone-else"),
               Record("user-erasures", 0, 2, None, request_message("r", USER, 1.0)),
               Record("user-erasures", 0, 3, USER.encode(), None), _request(4)]
    valid, rejected = validate_erasure_records(records)
    assert [r.request_id for r in valid] == ["r1"]
    assert [(rec.offset, reason) for rec, reason, _ in rejected] == [
        (0, "not_json"), (1, "key_mismatch"), (2, "key_mismatch"), (3, "not_json")]
    assert not [detail for _, _, detail in rejected if USER in detail]


def test_the_reply_carries_the_request_and_never_the_user():
    body = json.loads(done_message("r9", "already_erased", False, 5.0, 6.0))
    assert body == {"schema": "v1", "request_id": "r9", "status": "already_erased", "found": False,
                    "erased_at": 5.0, "done_at": 6.0}
    with pytest.raises(ValueError, match="erasure status 'gone'"):
        done_message("r9", "gone", False, 5.0, 6.0)


def test_an_erasure_removes_the_user_from_the_state_and_the_pusher_and_is_answered():
    async def main():
        eraser, ingest, state, sink = _worker(interval=3600.0)
        await ingest.handle([_click(1), _click(2, user="keep")])
        await ingest.handle([_click(3)])  # held back by the rate limit: pending
        assert ingest.pusher.pending == 1 and USER in state.user_records and USER in state.lists
        out = await eraser.handle([_request(0), _request(1, request_id="bad", key="other")])
        assert (out.erased, out.already_erased, out.invalid) == (1, 0, 1)
        assert USER not in state.user_records and USER not in state.lists and "keep" in state.user_records
        assert ingest.pusher.pending == 0 and USER not in repr(vars(ingest.pusher))  # forgotten in this process
        assert sink.tombstones == [USER] and [reason for _, reason, _ in sink.dead] == ["key_mismatch"]
        (request_id, payload), = sink.done
        assert request_id == "r1" and USER.encode() not in payload
        assert json.loads(payload) == {"schema": "v1", "request_id": "r1", "status": "erased", "found": True,
                                       "erased_at": 50.0, "done_at": 99.0}
        assert ingest.metrics.erasures_total.labels("erased")._value.get() == 1
        # redelivered: answered again, nothing more deleted
        again = await eraser.handle([_request(0)])
        assert again.already_erased == 1 and json.loads(sink.done[-1][1])["status"] == "already_erased"
        assert ingest.metrics.erasures_total.labels("already_erased")._value.get() == 1
        # the user's events up to the erasure are dropped and counted; a later one starts a new user
        late = await ingest.handle([_click(4, ts=40.0), _click(5, ts=51.0)])
        assert (late.applied, late.dropped, late.duplicates) == (1, 1, 0)
        assert ingest.metrics.erased_events_dropped_total.labels("click")._value.get() == 1
        assert state.stats["erased_dropped_total"] == 1 and state.user_records[USER].history == ["i5"]

    asyncio.run(main())


def test_an_erasure_removes_the_users_experiment_counters():
    from stream.experiments.assign import Assigner
    from stream.experiments.attribution import new_counters
    from stream.experiments.definition import parse
    from stream.experiments.serving import Serving
    from stream.experiments.state import MemoryExperiments
    from tests.helpers import experiment_toml

    async def main():
        eraser, ingest, state, sink = _worker()
        experiments = parse(experiment_toml())
        store = MemoryExperiments()
        ingest.engine.experiments = Serving(experiments, Assigner(experiments, store, new_counters), CONFIG,
                                            ingest.engine.table)
        await ingest.handle([_click(1), _click(2, user="keep")])
        assert sum([len(await store.counters("e", v)) for v in ("a", "b")]) == 2  # both ranked: both assigned
        await eraser.handle([_request(0)])
        left = (await store.counters("e", "a")) + (await store.counters("e", "b"))
        assert len(left) == 1 and (await store.tokens()).user("keep") in {
            tok for users in store.users.values() for tok in users}
        assert USER not in ingest.engine.experiments.assigner._known

    asyncio.run(main())


def test_an_erasure_waits_for_the_batch_in_flight():
    async def main():
        eraser, ingest, state, _ = _worker()
        await ingest.handle([_click(1)])
        async with ingest.lock:  # a batch between its load and its push
            task = asyncio.create_task(eraser.handle([_request(0)]))
            for _ in range(20):
                await asyncio.sleep(0)
            assert not task.done() and USER in state.user_records
        await task
        assert USER not in state.user_records

    asyncio.run(main())


def test_the_erasure_key_and_the_marker_lifetime_are_checked():
    with pytest.raises(ValidationError, match="STREAMREC_ERASURE_KEY has 5 characters: it needs at least 16"):
        Settings(erasure_key="short")
    assert Settings().erasure_marker_hours == 2 * Settings().event_retention_hours
    assert Settings(event_retention_hours=24).erasure_marker_hours == 48
    with pytest.raises(ValidationError, match="STREAMREC_ERASURE_MARKER_HOURS is 10: it must be at least"):
        Settings(event_retention_hours=24, erasure_marker_hours=10)
    assert "k3y" not in repr(Settings(erasure_key="k3y-" + "x" * 20))
