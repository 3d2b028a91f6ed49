"""The worker's batch handler (stream/engine/ingest.py) without Kafka or Redis: the real engine
over MemoryState with an in-process item owner (DirectBus), and a fake sink that records the
dead letters, lists and alerts it is given."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
import redis.exceptions

from stream.contract import encode, make_event
from stream.drift import DriftMonitor
from stream.engine.alerts import DriftWatch
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.ingest import Ingest
from stream.engine.items import DirectBus, ItemOwner
from stream.engine.push import Pusher
from stream.engine.validate import Record
from stream.metrics import build
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.state.memory import MemoryState

TOPICS = {"clicks": "click", "dwell": "dwell", "impressions": "impression", "purchases": "purchase"}
CONFIG = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4, "seed": 1}), rerank=None, behaviour=None,
                      explore_share=0.0, top_k=3, partitions=1)


class FakeSink:
    def __init__(self):
        self.dead, self.recs, self.alerts, self.flushes = [], [], [], 0

    async def dead_letter(self, record, reason, detail):
        self.dead.append((record, reason, detail))

    async def recommendations(self, user_id, payload):
        self.recs.append((user_id, json.loads(payload)))

    async def drift_alert(self, segment, payload):
        self.alerts.append((segment, json.loads(payload)))

    async def flush(self):
        self.flushes += 1


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _ingest(state=None, interval=0.0, clock=None, drift=False, config=CONFIG):
    clock = clock or Clock()
    state = state if state is not None else MemoryState()
    table = ItemTable(config.hybrid)
    owner = ItemOwner(table, state, clock=clock, keep_rows=False)
    engine = Engine(config, state, table, DirectBus(owner), clock=clock)
    sink, metrics = FakeSink(), build()
    pusher = Pusher(engine, sink, metrics, top_k=config.top_k, min_interval=interval, clock=clock)
    watch = DriftWatch(DriftMonitor(), metrics, window_seconds=10.0, active_seconds=1000.0, clock=clock) if drift else None
    ing = Ingest(engine, pusher, sink, metrics, topic_types=TOPICS, drift=watch, retry_delays=(0.0,))
    return ing, sink, state


def _rec(offset, value, topic="clicks", key=b"u1"):
    return Record(topic, 0, offset, key, value)


def _click(n, user="u1", item=None):
    return encode(make_event("click", event_id=f"e{n}", user_id=user, item_id=item or f"i{n}", ts=float(n)))


def _ids(state, *event_ids):
    """What the state keeps of these event ids: their tokens."""
    return set(state.tokens.events(list(event_ids)))


def _items(payload):
    return [i["item_id"] for i in payload["items"]]


def test_bad_messages_are_dead_lettered_with_their_reason_and_the_rest_applied():
    ing, sink, state = _ingest()
    missing = json.dumps({"event_id": "e9", "user_id": "u1", "ts": 1.0, "schema": "v1"}).encode()
    out = asyncio.run(ing.handle([
        _rec(0, _click(0)), _rec(1, b"nope"), _rec(2, None), _rec(3, _click(3), key=b"mallory"),
        _rec(4, _click(4), topic="unknown"), _rec(5, missing), _rec(6, _click(6)),
    ]))
    assert (out.applied, out.invalid) == (2, 5)
    assert [(r.offset, reason) for r, reason, _ in sink.dead] == [
        (1, "not_json"), (2, "not_json"), (3, "key_mismatch"), (4, "unknown_topic"), (5, "missing_field")]
    assert sink.dead[0][0].value == b"nope"  # the original bytes
    assert "item_id" in sink.dead[4][2]  # the detail names the field
    assert out.reasons == {"not_json": 2, "key_mismatch": 1, "unknown_topic": 1, "missing_field": 1}
    assert state.claimed == _ids(state, "e0", "e6") and state.user_records["u1"].events == 2
    assert sink.flushes == 1  # dead letters are flushed before the batch is acknowledged
    assert ing.metrics.invalid_events_total.labels("not_json")._value.get() == 2


def test_duplicates_are_counted_once_and_not_applied_again():
    ing, _, state = _ingest()
    first = asyncio.run(ing.handle([_rec(0, _click(0)), _rec(1, _click(0))]))  # a producer retry in one batch
    assert (first.applied, first.duplicates) == (1, 1)
    again = asyncio.run(ing.handle([_rec(2, _click(0))]))  # redelivered after a restart
    assert (again.applied, again.duplicates) == (0, 1)
    assert state.user_records["u1"].events == 1 and state.stats["events_total:click"] == 1
    assert ing.metrics.duplicate_events_total._value.get() == 2


class FlakyState(MemoryState):
    """A store that fails its first loads as a restarting Redis would, and cannot commit a
    batch holding a poison user."""

    def __init__(self, failures=0, error=redis.exceptions.ConnectionError("redis restarting")):
        super().__init__()
        self.failures, self.loads, self.error = failures, 0, error

    async def load(self, *args, **kwargs):
        self.loads += 1
        if self.loads <= self.failures:
            raise self.error
        return await super().load(*args, **kwargs)

    async def commit(self, commit):
        if any(uid == "poison" for uid in commit.users):
            raise RuntimeError("poison user")
        await super().commit(commit)


@pytest.mark.parametrize("error", [
    redis.exceptions.ConnectionError("redis restarting"),
    redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:6379"),
    # a Redis Cluster whose node of the slot is away: waited out too, never taken for a poison event
    redis.exceptions.ClusterDownError("The cluster is down"),
    redis.exceptions.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'"),
    redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"),
    redis.exceptions.SlotNotCoveredError("Slot 7 is not covered by the cluster"),
    redis.exceptions.RedisClusterUnreachableError("Redis Cluster cannot be connected"),
], ids=lambda e: type(e).__name__)
def test_transient_store_failures_are_retried_not_dropped(error):
    state = FlakyState(failures=2, error=error)
    ing, sink, _ = _ingest(state)
    out = asyncio.run(ing.handle([_rec(0, _click(0)), _rec(1, _click(1))]))
    assert out.applied == 2 and state.loads == 3 and state.claimed == _ids(state, "e0", "e1") and not sink.dead


def test_a_poison_event_is_isolated_and_dead_lettered_the_rest_applied():
    state = FlakyState()
    ing, sink, _ = _ingest(state)
    out = asyncio.run(ing.handle([_rec(0, _click(0)), _rec(1, _click(1, user="poison"), key=b"poison"),
                                  _rec(2, _click(2))]))
    assert out.applied == 2 and [(r.offset, reason) for r, reason, _ in sink.dead] == [(1, "processing_error")]
    assert "RuntimeError: poison user" in sink.dead[0][2]
    assert state.claimed == _ids(state, "e0", "e2")


def test_a_list_is_pushed_when_it_changes_and_not_again_when_unchanged():
    async def main():
        ing, sink, state = _ingest()
        await ing.handle([_rec(0, _click(0, "u1", "a")), _rec(1, _click(1, "u2", "b"), key=b"u2"),
                          _rec(2, _click(2, "u2", "c"), key=b"u2")])
        assert sorted(u for u, _ in sink.recs) == ["u1", "u2"]
        lists = {u: p for u, p in sink.recs}
        assert "a" not in _items(lists["u1"]) and _items(lists["u1"]) and lists["u1"]["trigger"] == "event"
        assert not {"b", "c"} & set(_items(lists["u2"]))  # seen items are left out
        assert set(state.lists) == {"u1", "u2"}
        await ing.handle([_rec(3, _click(0, "u1", "a"))])  # a duplicate changes nothing: nobody is due
        ing.pusher.changed(["u1"])  # due, but its list is what was pushed last: not sent again
        assert await ing.pusher.push_due() == 0 and len(sink.recs) == 2
        out = await ing.handle([_rec(4, _click(4, "u1", "b"))])
        assert out.pushed == 1 and sink.recs[-1][0] == "u1" and "b" not in _items(sink.recs[-1][1])

    asyncio.run(main())


def test_the_rate_limit_holds_a_user_back_until_their_turn():
    async def main():
        clock = Clock()
        ing, sink, _ = _ingest(interval=10.0, clock=clock)
        await ing.handle([_rec(0, _click(0, "u1", "a")), _rec(1, _click(1, "u2", "b"), key=b"u2")])
        assert sorted(u for u, _ in sink.recs) == ["u1", "u2"]
        clock.now = 1.0
        out = await ing.handle([_rec(2, _click(2, "u1", "b"))])
        assert out.pushed == 0 and ing.pusher.pending == 1 and len(sink.recs) == 2  # held back, still pending
        clock.now = 9.9
        assert await ing.pusher.push_due() == 0
        clock.now = 10.0
        assert await ing.pusher.push_due() == 1 and ing.pusher.pending == 0
        assert sink.recs[-1][0] == "u1" and "b" not in _items(sink.recs[-1][1])

    asyncio.run(main())


def test_prequential_trials_count_clicks_of_users_with_history():
    async def main():
        ing, _, _ = _ingest()
        m = ing.metrics
        others = [_rec(n, _click(n, "u2", item), key=b"u2") for n, item in enumerate("bcdefg", start=1)]
        await ing.handle([_rec(0, _click(0, "u1", "a"))] + others)  # u1's first event: not a trial
        assert m.prequential_trials_total.labels("all")._value.get() == 5  # u2's clicks after its first
        before = m.prequential_hits_total.labels("all")._value.get()
        ndcg = m.prequential_ndcg_sum.labels("all")._value.get()
        served = (await ing.engine.recommend(["u1"], 3))["u1"][1].ids
        clicked = served[1]
        hit = await ing.handle([_rec(10, _click(10, "u1", clicked))])  # the list's second item
        served = (await ing.engine.recommend(["u1"], 3))["u1"][1].ids
        miss = next(i for i in "bcdefg" if i not in served and i != clicked)
        missed = await ing.handle([_rec(11, _click(11, "u1", miss))])
        assert (hit.trials, hit.hits, missed.trials, missed.hits) == (1, 1, 1, 0)
        assert m.prequential_trials_total.labels("all")._value.get() == 7
        assert m.prequential_hits_total.labels("all")._value.get() == before + 1
        assert abs(m.prequential_ndcg_sum.labels("all")._value.get() - ndcg - 1 / math.log2(3)) < 1e-12  # rank 2

    asyncio.run(main())


def test_a_ctr_jump_raises_one_drift_alert_counter_and_active_gauge():
    async def main():
        clock = Clock()
        ing, sink, _ = _ingest(clock=clock, drift=True)
        n = 0

        def event(kind):
            nonlocal n
            n += 1
            user = f"v{n}"  # every event from a new user: no trials, only the CTR moves
            if kind == "click":
                return _rec(n, _click(n, user, "a"), key=user.encode())
            value = encode(make_event("impression", event_id=f"im{n}", user_id=user, items=["a"], rec_id="r",
                                      ts=float(n)))
            return _rec(n, value, topic="impressions", key=user.encode())

        # 40 windows of 10 s with 9 impressions and 1 click each, then 20 windows with 6 and 4
        for window in range(60):
            clicks = 1 if window < 40 else 4
            await ing.handle([event("impression") for _ in range(10 - clicks)] + [event("click") for _ in range(clicks)])
            if window == 39:
                assert sink.alerts == []  # stationary so far: no alarm
            clock.now += 10.0
        await ing.drift.publish(sink)
        assert len(sink.alerts) == 1
        segment, alert = sink.alerts[0]
        assert segment == "all" and alert["signal"] == "ctr" and alert["detector"] == "ADWIN"
        assert alert["value_before"] < 0.2 and alert["value_after"] > alert["value_before"] + 0.1
        m = ing.metrics
        assert m.drift_alerts_total.labels("all", "ctr", "ADWIN")._value.get() == 1
        assert m.drift_active.labels("all", "ctr")._value.get() == 1
        clock.now += 1001.0
        await ing.drift.publish(sink)
        assert m.drift_active.labels("all", "ctr")._value.get() == 0 and len(sink.alerts) == 1

    asyncio.run(main())


def test_purchases_are_applied_and_counted_per_segment_and_bad_ones_dead_lettered():
    ing, sink, state = _ingest()
    purchase = encode(make_event("purchase", event_id="p1", user_id="u1", item_id="i7", ts=5.0, value=30, currency="EUR",
                                 context={"rec_id": "r1", "position": 1}))
    bad = encode({"event_id": "p2", "user_id": "u1", "item_id": "i8", "ts": 6.0, "schema": "v1", "value": 30,
                  "currency": "euro"})
    out = asyncio.run(ing.handle([_rec(0, _click(0)), _rec(0, purchase, topic="purchases"),
                                  _rec(1, bad, topic="purchases")]))
    assert (out.applied, out.invalid) == (2, 1)
    assert [(r.topic, reason) for r, reason, _ in sink.dead] == [("purchases", "out_of_range")]
    assert "'currency'" in sink.dead[0][2]
    assert "i7" in state.user_records["u1"].seen and state.stats["events_total:purchase"] == 1
    assert ing.metrics.events_total.labels("purchase", "all")._value.get() == 1
