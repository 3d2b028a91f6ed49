"""The ingest pipeline without Kafka or Redis: a fake store and publisher (unit level only)."""

from __future__ import annotations

import asyncio
import json
import math

import redis.exceptions

from stream.agents.pipeline import Ingestor, Record
from stream.contract import encode, make_event
from stream.metrics import build
from stream.store.keys import Keys
from stream.store.popularity import Applied

TOPICS = {"clicks": "click", "dwell": "dwell", "impressions": "impression"}


class FakeRedis:
    def __init__(self):
        self.data: dict[str, bytes] = {}

    def pipeline(self, transaction=False):
        return FakePipe(self)


class FakePipe:
    def __init__(self, r):
        self.r, self.ops = r, []

    def get(self, key):
        self.ops.append(("get", key))

    def set(self, key, value):
        self.ops.append(("set", key, value))

    async def execute(self):
        out = []
        for op in self.ops:
            if op[0] == "get":
                out.append(self.r.data.get(op[1]))
            else:
                self.r.data[op[1]] = op[2]
                out.append(True)
        return out


class FakeStore:
    def __init__(self, fail_times=0):
        self.redis = FakeRedis()
        self.keys = Keys("t")
        self.seen_ids: set[str] = set()
        self.fail_times = fail_times
        self.calls = 0

    async def segments_of(self, users, default):
        return {u: default for u in users}

    async def apply(self, events, segments):
        self.calls += 1
        if self.calls <= self.fail_times:
            raise redis.exceptions.ConnectionError("redis restarting")
        out = []
        for ev in events:
            out.append(Applied(ev, segments[ev.user_id], ev.event_id not in self.seen_ids))
            self.seen_ids.add(ev.event_id)
        return out

    async def probe(self, events):
        return ([ev.event_id in self.seen_ids for ev in events], {ev.user_id: len(self.seen_ids) for ev in events},
                [False for _ in events])

    async def top_k(self, users, segments, k):
        return {u: [("popular", 2.0), ("other", 1.0)] for u in users}


class FakePublisher:
    def __init__(self):
        self.dead, self.recs, self.flushes, self.alerts = [], [], 0, []

    async def dead_letter(self, record, reason, detail):
        self.dead.append((record, reason, detail))

    async def recommendations(self, user_id, payload):
        self.recs.append((user_id, json.loads(payload)))

    async def drift_alert(self, segment, payload):
        self.alerts.append((segment, json.loads(payload)))

    async def flush(self):
        self.flushes += 1


def _ingestor(store=None, interval=0.0, clock=None, drift=None, active=1000.0):
    pub = FakePublisher()
    ing = Ingestor(store or FakeStore(), pub, build(), topic_types=TOPICS, default_segment="all", top_k=2,
                   rec_min_interval_seconds=interval, retry_delays=(0.0,), clock=clock or (lambda: 0.0),
                   drift=drift, drift_active_seconds=active)
    return ing, pub


def _rec(offset, value, topic="clicks", key=b"u1"):
    return Record(topic, 0, offset, key, value)


def _click(n, user="u1"):
    return encode(make_event("click", event_id=f"e{n}", user_id=user, item_id=f"i{n}", ts=float(n)))


def test_bad_messages_are_dead_lettered_and_the_rest_applied():
    ing, pub = _ingestor()
    result = asyncio.run(ing.handle([
        _rec(0, _click(0)), _rec(1, b"nope"), _rec(2, None), _rec(3, _click(3), key=b"mallory"),
        _rec(4, _click(4), topic="unknown"), _rec(5, _click(5)),
    ]))
    assert result.applied == 2 and result.invalid == 4
    assert [(r.offset, reason) for r, reason, _ in pub.dead] == [
        (1, "not_json"), (2, "not_json"), (3, "key_mismatch"), (4, "unknown_topic")]
    assert pub.dead[0][0].value == b"nope"
    assert pub.flushes == 1  # dead letters are flushed before the batch is acknowledged


def test_transient_store_failures_are_retried_not_dropped():
    store = FakeStore(fail_times=2)
    ing, _ = _ingestor(store)
    result = asyncio.run(ing.handle([_rec(0, _click(0))]))
    assert result.applied == 1 and store.calls == 3


def test_duplicates_are_counted_not_applied():
    ing, _ = _ingestor()
    asyncio.run(ing.handle([_rec(0, _click(0))]))
    result = asyncio.run(ing.handle([_rec(1, _click(0))]))
    assert result.applied == 0 and result.duplicates == 1


def test_lists_are_pushed_when_they_change_and_rate_limited():
    now = [0.0]
    ing, pub = _ingestor(interval=10.0, clock=lambda: now[0])
    asyncio.run(ing.handle([_rec(0, _click(0))]))
    assert [u for u, _ in pub.recs] == ["u1"]
    assert [i["item_id"] for i in pub.recs[0][1]["items"]] == ["popular", "other"]
    asyncio.run(ing.handle([_rec(1, _click(1), key=b"u1")]))
    assert len(pub.recs) == 1  # rate-limited: held back, still pending
    now[0] = 11.0
    assert asyncio.run(ing.push_due()) == 0  # allowed now, but the list did not change: nothing sent
    assert len(pub.recs) == 1


def test_prequential_hit_rate_counts_clicks_of_users_with_history():
    ing, _ = _ingestor()
    m = ing.metrics
    asyncio.run(ing.handle([_rec(0, _click(0))]))  # no history yet: not a trial
    assert m.prequential_trials_total.labels("all")._value.get() == 0
    hit = encode(make_event("click", event_id="h", user_id="u1", item_id="other", ts=5.0))
    miss = encode(make_event("click", event_id="m", user_id="u1", item_id="nowhere", ts=6.0))
    asyncio.run(ing.handle([_rec(1, hit), _rec(2, miss)]))
    assert m.prequential_trials_total.labels("all")._value.get() == 2
    assert m.prequential_hits_total.labels("all")._value.get() == 1
    assert abs(m.prequential_ndcg_sum.labels("all")._value.get() - 1 / math.log2(3)) < 1e-12  # "other" is rank 2


def test_a_ctr_jump_raises_one_drift_alert_counter_and_active_gauge():
    from stream.drift import DriftMonitor

    now = [0.0]
    ing, pub = _ingestor(clock=lambda: now[0], drift=DriftMonitor())
    def impression(n):
        return _rec(n, encode(make_event("impression", event_id=f"im{n}", user_id="u1", items=["a"], rec_id="r",
                                         ts=float(n))), topic="impressions")

    # 40 windows of 10 s: 9 impressions and 1 click each, then 20 windows with 6 and 4
    n = 0
    for window in range(60):
        clicks = 1 if window < 40 else 4
        batch = [impression(n + j) for j in range(10 - clicks)] + [_rec(n + 10 + j, _click(n + 10 + j)) for j in range(clicks)]
        n += 20
        asyncio.run(ing.handle(batch))
        if window == 39:
            assert pub.alerts == []  # stationary so far: no alarm
        now[0] += 10.0
    asyncio.run(ing.publish_alerts())
    assert len(pub.alerts) == 1
    segment, alert = pub.alerts[0]
    assert segment == "all" and alert["signal"] == "ctr" and alert["detector"] == "ADWIN"
    assert alert["value_before"] < 0.2 and alert["value_after"] > alert["value_before"] + 0.1
    m = ing.metrics
    assert m.drift_alerts_total.labels("all", "ctr", "ADWIN")._value.get() == 1
    assert m.drift_active.labels("all", "ctr")._value.get() == 1
    now[0] += 1001.0
    asyncio.run(ing.publish_alerts())
    assert m.drift_active.labels("all", "ctr")._value.get() == 0
