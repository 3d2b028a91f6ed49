"""Producer -> Kafka -> worker -> Redis -> recommendations topic and HTTP, on the real stack."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest
import redis

from consumers.sdk import TopicReader, dead_letters, latest_recommendations, murmur2_partition
from producers.sdk import EventProducer
from stream.engine.config import MODEL_NAMES
from stream.contract import encode, make_event
from stream.state.keys import Keys
from stream.state.packing import unpack_user
from tests.helpers import applied, stats, wait_for, worker_metric

pytestmark = pytest.mark.integration


def _click(n: int, user: str, item: str, ts: float = 1_700_000_000.0) -> dict:
    return make_event("click", event_id=f"ev-{user}-{item}-{n}", user_id=user, item_id=item, ts=ts + n)


def test_round_trip_recommendations_reach_topic_and_http(isolated, worker_factory):
    isolated = isolated.model_copy(update={"trial_share": 1.0})  # every trial counted (the hit rate below)
    worker = worker_factory(isolated).start()
    profiles = redis.Redis.from_url(isolated.redis_url)
    users = ["alice", "bob", "carol", "dave"]
    with EventProducer(isolated) as producer:
        for user in users:
            producer.send("user", {"event_id": f"p-{user}", "user_id": user, "ts": 1.0, "schema": "v1",
                                   "attributes": {"segment": "readers", "country": "fr"}})
        producer.flush()
        # Profiles and events are separate topics: wait, so every click counts for "readers".
        wait_for(lambda: all(profiles.hget(Keys(isolated.redis_prefix).profile(u), "_segment") for u in users),
                 30, "the four profiles")
        # Other readers make item "hit" the most popular, then "second"; alice has seen "hit" already.
        n = 0
        for user, items in {"bob": ["hit", "second"], "carol": ["hit", "second"], "dave": ["hit", "third"]}.items():
            for item in items:
                n += 1
                producer.send("click", _click(n, user, item))
        producer.flush()
        wait_for(lambda: applied(isolated) >= n, 30, f"{n} events applied")
        producer.send("click", _click(99, "alice", "hit"))

    rec = wait_for(lambda: latest_recommendations("alice", isolated), 30, "alice's list on the recommendations topic")
    items = [i["item_id"] for i in rec["items"]]
    assert rec["user_id"] == "alice" and rec["segment"] == "segment:readers" and rec["model"] == MODEL_NAMES["rerank"]
    assert "hit" not in items and set(items) == {"second", "third"}  # every item alice has not seen

    time.sleep(1.5)  # the items' owner publishes their rows within STREAMREC_ITEM_PUBLISH_SECONDS; then all is still
    with urllib.request.urlopen(f"{worker.url}/recommendations/alice?k=1", timeout=5) as resp:
        http = json.loads(resp.read())
    top1 = [i["item_id"] for i in http["items"]]
    assert len(top1) == 1 and top1[0] in {"second", "third"} and http["model"] == MODEL_NAMES["rerank"]
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert 'streamrec_events_total{segment="segment:readers",type="click"} 7.0' in metrics
    # the worker's collector was tuned once its app had started (STREAMREC_GC_THRESHOLD)
    assert f"objects frozen, thresholds ({isolated.gc_threshold}, " in worker.log_path.read_text(errors="replace")

    stored = redis.Redis.from_url(isolated.redis_url).get(Keys(isolated.redis_prefix).user("alice"))
    alice = unpack_user("alice", stored, dim=isolated.mf_factors)
    assert len(alice.seen) == 1 and "hit" in alice.seen

    # Prequential hit rate: alice (with history now) clicks her top-1 item: one more trial, one
    # more hit at rank 1. (bob's, carol's and dave's second clicks were trials already.)
    def metric(name):
        with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(f'{name}{{segment="segment:readers"}}'):
                    return float(line.split()[-1])
        return 0.0

    names = ("streamrec_prequential_trials_total", "streamrec_prequential_hits_total",
             "streamrec_prequential_ndcg_gain_total")
    before = {name: metric(name) for name in names}
    assert before["streamrec_prequential_trials_total"] == 3.0
    with EventProducer(isolated) as producer:
        producer.send("click", _click(100, "alice", top1[0]))
    wait_for(lambda: metric(names[0]) == before[names[0]] + 1, 30, "alice's click scored as a trial")
    assert metric(names[1]) == before[names[1]] + 1
    assert metric(names[2]) == before[names[2]] + 1.0

    # A new profile that changes alice's segment moves her, and the move is counted.
    with EventProducer(isolated) as producer:
        producer.send("user", {"event_id": "p-alice-2", "user_id": "alice", "ts": 2.0, "schema": "v1",
                               "attributes": {"segment": "writers"}})
    wait_for(lambda: profiles.hget(Keys(isolated.redis_prefix).profile("alice"), "_segment") == b"segment:writers", 30,
             "alice in segment segment:writers")
    assert worker_metric(worker.url, "streamrec_segment_moves_total") == 1.0


def test_http_rejects_bad_k(isolated, worker_factory):
    worker = worker_factory(isolated).start()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{worker.url}/recommendations/alice?k=zero", timeout=5)
    assert err.value.code == 400
    assert "must be an integer" in json.loads(err.value.read())["error"]


def test_malformed_messages_go_to_dlq_and_valid_ones_around_them_are_applied(isolated, worker_factory):
    worker_factory(isolated).start()
    bad_dwell = {"event_id": "d1", "user_id": "u1", "item_id": "i1", "ts": 5.0, "schema": "v1", "seconds": -4}
    with EventProducer(isolated, validate=False) as producer:
        producer.send("click", _click(1, "u1", "i1"))
        producer.send_raw("clicks", b"u1", b"{not json")
        producer.send("dwell", bad_dwell)
        producer.send_raw("skips", b"someone-else", encode(
            {"event_id": "s1", "user_id": "u1", "item_id": "i2", "ts": 6.0, "schema": "v1", "after_seconds": 1}))
        producer.send_raw("clicks", b"u1", b"\xff\xfe")
        producer.send_raw("clicks", b"u1", b"x" * (70 * 1024))
        producer.send("click", _click(2, "u1", "i3"))
        producer.send_raw("users", b"u9", b'{"event_id": "p9", "user_id": "u9", "ts": 1, "schema": "v1", "attributes": [1]}')
        lone = b'{"event_id": "c-lone", "user_id": "u1", "item_id": "i\\ud800", "ts": 7.0, "schema": "v1"}'
        producer.send_raw("clicks", b"u1", lone)  # an escape with no UTF-8 form: refused, not a failed batch

    letters = wait_for(lambda: (lambda d: d if len(d) >= 7 else None)(list(dead_letters(isolated))), 30,
                       "seven dead letters")
    by_reason: dict = {}
    for d in letters:
        by_reason.setdefault(d.reason, []).append(d)
    assert sorted(d.value for d in by_reason["not_utf8"]) == sorted([b"\xff\xfe", lone])  # as sent
    by_reason = {reason: ds[0] for reason, ds in by_reason.items()}
    assert set(by_reason) == {"not_json", "out_of_range", "key_mismatch", "not_utf8", "too_large", "wrong_type"}
    assert by_reason["wrong_type"].source_topic == isolated.topic("users")
    assert by_reason["not_json"].value == b"{not json"  # the original bytes, untouched
    assert by_reason["out_of_range"].value == encode(bad_dwell)
    assert "seconds" in by_reason["out_of_range"].detail
    assert by_reason["out_of_range"].source_topic == isolated.topic("dwell")
    assert by_reason["not_json"].source_offset >= 0
    wait_for(lambda: stats(isolated).get("events_total:click") == 2, 30, "both valid clicks applied")
    assert applied(isolated) == 2


def test_duplicate_event_ids_are_applied_once(isolated, worker_factory):
    worker_factory(isolated).start()
    with EventProducer(isolated) as producer:
        ev = _click(1, "u1", "i1")
        producer.send("click", ev)
        producer.send("click", ev)  # a producer-side retry of the same event
        producer.send("click", _click(2, "u1", "i2"))
    wait_for(lambda: stats(isolated).get("duplicates_total") == 1, 30, "one duplicate counted")
    assert stats(isolated)["events_total:click"] == 2


def test_restarted_worker_does_not_reprocess_committed_events(isolated, worker_factory):
    first = worker_factory(isolated, "first").start()
    with EventProducer(isolated) as producer:
        for n in range(300):
            producer.send("click", _click(n, f"user{n % 17}", f"item{n % 23}"))
    wait_for(lambda: applied(isolated) == 300, 60, "300 events applied")
    assert first.stop(signal.SIGTERM) == 0  # a graceful stop commits the offsets

    worker_factory(isolated, "second").start()
    with EventProducer(isolated) as producer:
        for n in range(300, 400):
            producer.send("click", _click(n, f"user{n % 17}", f"item{n % 23}"))
    wait_for(lambda: applied(isolated) == 400, 60, "400 events applied")
    # Had the second worker re-read committed events, their event ids would have been seen again.
    assert stats(isolated).get("duplicates_total", 0) == 0


def test_producer_partitions_by_user_like_the_worker(isolated):
    with EventProducer(isolated) as producer:
        for user in ("a", "bob", "user-000123", "ümlaut"):
            producer.send("click", _click(1, user, "i"))
    msgs = list(TopicReader("clicks", isolated).read())
    assert len(msgs) == 4
    for msg in msgs:
        assert msg.partition == murmur2_partition(msg.key, isolated.partitions), msg.key


def test_a_ctr_jump_publishes_a_drift_alert(isolated, worker_factory):
    from consumers.sdk import drift_alerts

    # 1 s windows: the impressions fill a window of their own, the clicks the next ones
    worker_factory(isolated.model_copy(update={"drift_window_seconds": 1.0})).start()
    with EventProducer(isolated) as producer:
        for n in range(600):  # a long run without clicks, then only clicks: CTR jumps
            producer.send("impression", make_event("impression", event_id=f"im{n}", user_id=f"v{n % 7}",
                                                   items=["a", "b"], rec_id=f"r{n}", ts=1_700_000_000.0 + n))
        producer.flush()
        wait_for(lambda: stats(isolated).get("events_total:impression") == 600, 60, "600 impressions applied")
        time.sleep(1.5)
        for n in range(200):
            producer.send("click", _click(n, f"v{n % 7}", "a"))
    alerts = wait_for(lambda: list(drift_alerts(isolated)), 60, "a drift alert on alerts.drift")
    first = alerts[0]
    assert first["segment"] == "all" and first["signal"] == "ctr" and first["detector"] == "ADWIN"
    assert first["value_before"] < 0.1 and first["value_after"] > 3 * first["value_before"]
