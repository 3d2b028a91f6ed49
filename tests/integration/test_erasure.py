"""Erasing a user on the real stack: a worker, Kafka and Redis; events from the producer SDK (a
distinctive user whose event ids embed their id) and from the MovieLens replay (whose event ids,
``ml100k-<user>-<item>-<type>``, embed theirs). One user is erased with `streamrec-produce erase
--wait`, one through the SDK with the consumer SDK and `streamrec-consume erasure` confirming.

Then a type-aware scan of every Redis key and value under the prefix (tests/scan.py; packed user
records decoded) finds no trace of either; a tombstone is on the users topic; GET
/recommendations answers as for a new user. Events at or before the erasure arriving later on
other topics (a dwell, a profile, a resend of an applied click) do not bring the user back; an
event after it starts a new user; and a second worker in a new consumer group, which reads every
topic again from the beginning (every event, profile and erasure request redelivered), leaves the
erased user erased and the new user as they were.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
import uuid
from collections import Counter

import pytest
from pydantic import SecretStr

from stream.contract import INTERACTION_TOPICS
from stream.state.keys import Keys
from tests.helpers import applied, run_module, stats, wait_for, worker_metric
from tests.scan import json_field_values, redis_contents
from tests.secure import new_secret

pytestmark = pytest.mark.integration

REPLAY_RATINGS = 300
EVENT_TOPICS = INTERACTION_TOPICS


_run = run_module


def _busiest_movielens_user(limit: int) -> str:
    from producers.replay import movielens_stream
    from stream.evaluation.datasets import movielens_100k_dir

    counts = Counter(p["user_id"] for _, p in movielens_stream(movielens_100k_dir(), limit=limit))
    return counts.most_common(1)[0][0]


def _get(worker, path: str) -> dict:
    with urllib.request.urlopen(f"{worker.url}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def _traces(settings, user: str) -> list[str]:
    """Where Redis still names ``user``: raw bytes anywhere (keys, values, decoded records) for a
    distinctive id; for a MovieLens id (a number that item ids share): a key of theirs, a decoded
    record of theirs, a user_id field, or an event id of theirs."""
    keys = set(Keys(settings.redis_prefix).per_user(user))
    found = []
    for s in redis_contents(settings):
        if s.where in keys or (s.kind == "string" and s.where.endswith(f":user:{user}")):
            found.append(s.where)
        elif any(v == user for part in s.parts for v in json_field_values(part, "user_id")):
            found.append(f"{s.where} (user_id)")
        elif s.contains(f"ml100k-{user}-".encode()) or (not user.isdigit() and s.contains(user.encode())):
            found.append(s.where)
    return found


def _event_records(settings) -> int:
    """Records on the event topics (what a new consumer group reads again)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**settings.kafka_client_config(), "group.id": "erasure-count"})
    try:
        meta = consumer.list_topics(timeout=10).topics
        parts = [TopicPartition(settings.topic(t), p) for t in EVENT_TOPICS for p in meta[settings.topic(t)].partitions]
        return sum(high - low for low, high in (consumer.get_watermark_offsets(tp, timeout=10) for tp in parts))
    finally:
        consumer.close()


def _last_profile_record(settings, user: str):
    from consumers.sdk import TopicReader

    last = None
    for msg in TopicReader("users", settings).read(key=user.encode()):
        last = msg
    return last


def test_an_erased_user_leaves_no_trace_and_stays_erased(isolated, worker_factory, tmp_path):
    from consumers.sdk import dead_letters, erasure_done
    from producers.sdk import EventProducer
    from stream.erasure import request_message
    from stream.topics import drop_topics

    key = new_secret("erasure-key")
    settings = isolated.model_copy(update={"explore_share": 0.0, "erasure_key": SecretStr(key)})
    worker = worker_factory(settings, name="erasure").start()
    log = tmp_path / "cli.log"
    tag = uuid.uuid4().hex[:6]
    user, kept = f"erase.me-{tag}@example.org", f"kept-{tag}"

    # --- a distinctive user and another through the SDK; a MovieLens slice through the replay -------
    with EventProducer(settings) as producer:
        for u in (user, kept):
            producer.send("user", {"event_id": f"profile-{u}", "user_id": u, "ts": 1.0, "schema": "v1",
                                   "attributes": {"segment": "readers"}})
        n = 0
        for round_ in range(5):
            for u in (user, kept):
                for kind, extra in (("click", {}), ("dwell", {"seconds": 45.0})):
                    n += 1
                    producer.send(kind, {"event_id": f"{u}-{kind}-{round_}", "user_id": u, "item_id": f"book-{round_}",
                                         "ts": 100.0 + n, "schema": "v1", **extra})
    out = _run(settings, log, "producers.cli", "replay", "movielens-100k", "--limit", str(REPLAY_RATINGS), "--quiet")
    assert out.returncode == 0, out.stderr
    replayed = json.loads(out.stdout.splitlines()[-1])["sent"]
    ml_user = _busiest_movielens_user(REPLAY_RATINGS)
    wait_for(lambda: applied(settings) >= n + replayed, 120, "every SDK and replayed event applied")
    for u in (user, ml_user):  # the scan sees them before: it looks in the right places
        wait_for(lambda u=u: len(_traces(settings, u)) >= 4, 30, f"{u}'s record, row, profile and last list")

    # --- erase: the CLI waits for the reply; the SDK's request is confirmed by the consumer CLI ------
    cli = _run(settings, log, "producers.cli", "erase", "--user", user, "--wait")
    assert cli.returncode == 0, cli.stderr
    done = json.loads(cli.stdout)
    assert (done["status"], done["found"]) == ("erased", True) and user not in cli.stdout
    erased_at = done["erased_at"]
    with EventProducer(settings) as producer:
        request_id = producer.erase(ml_user)
        producer.send_raw("user-erasures", kept.encode(), b'{"schema": "v1", "request_id": "bad"')  # not JSON
        producer.send_raw("user-erasures", kept.encode(), request_message("moved", ml_user, 1.0))  # key mismatch
    assert erasure_done(request_id, settings)["status"] == "erased"
    confirmed = _run(settings, log, "consumers.cli", "erasure", "--request-id", request_id)
    assert confirmed.returncode == 0 and json.loads(confirmed.stdout)["request_id"] == request_id

    # --- no trace in Redis; the markers are keyed hashes that expire; the kept user is untouched -----
    for u in (user, ml_user):
        assert not _traces(settings, u), f"{u} is still in {_traces(settings, u)[:5]}"
    stored = redis_contents(settings)
    assert not [s.where for s in stored if s.contains(b"ml100k-")], "a raw event id is kept"
    event_id_sets = re.compile(re.escape(settings.redis_prefix) + r":ids:\d+")  # not the item owners' update ids
    assert len([p for s in stored if s.kind == "set" and event_id_sets.fullmatch(s.where) for p in s.parts[1:]]) \
        >= n + replayed
    markers = [s for s in stored if ":erased:" in s.where]
    assert len(markers) == 2
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    for m in markers:
        assert 0 < client.ttl(m.where) <= settings.erasure_marker_hours * 3600
    assert (client.exists(Keys(settings.redis_prefix).user(kept)), client.exists(Keys(settings.redis_prefix).profile(kept))) == (1, 1)
    assert worker_metric(worker.url, "streamrec_erasures_total") == 2
    dead = wait_for(lambda: (d := [x for x in dead_letters(settings) if x.source_topic.endswith("user-erasures")])
                    and len(d) == 2 and d, 30, "the two bad requests dead-lettered")
    assert sorted(x.reason for x in dead) == ["key_mismatch", "not_json"]
    assert client.exists(Keys(settings.redis_prefix).user(kept)) == 1  # a bad request erases nobody
    for u in (user, ml_user):  # the profile's tombstone on the compacted users topic
        wait_for(lambda u=u: (r := _last_profile_record(settings, u)) is not None and r.value is None, 30,
                 f"a tombstone for {u} on the users topic")

    # --- served as a new user, and looking does not bring them back ---------------------------------
    new_user = _get(worker, f"/recommendations/never-seen-{tag}?k=5")
    for u in (user, ml_user):
        served = _get(worker, f"/recommendations/{urllib.parse.quote(u, safe='')}?k=5")
        assert (served["segment"], served["model"], [i["item_id"] for i in served["items"]]) == \
            (new_user["segment"], new_user["model"], [i["item_id"] for i in new_user["items"]])
    assert new_user["model"] == "segment-popularity-v1" and new_user["items"]
    assert not _traces(settings, user) and not _traces(settings, ml_user)

    # --- late, at or before the erasure: a dwell, a profile, a resend of an applied click ------------
    before = stats(settings)
    with EventProducer(settings) as producer:
        producer.send("dwell", {"event_id": f"{user}-dwell-late", "user_id": user, "item_id": "book-9",
                                "ts": erased_at - 1.0, "seconds": 30.0, "schema": "v1"})
        producer.send("user", {"event_id": f"profile-{user}-late", "user_id": user, "ts": erased_at, "schema": "v1",
                               "attributes": {"segment": "late"}})
        producer.send("click", {"event_id": f"{user}-click-0", "user_id": user, "item_id": "book-0", "ts": 101.0,
                                "schema": "v1"})

    def settled():  # dropped and caught, as they should be; or the user is back
        s = stats(settings)
        return _traces(settings, user) or (s.get("erased_dropped_total", 0) >= 2 and
                                           s.get("duplicates_total", 0) >= before.get("duplicates_total", 0) + 1)

    wait_for(settled, 60, "the late dwell and profile dropped, the resend caught")
    assert not _traces(settings, user), f"the late messages brought {user} back: {_traces(settings, user)}"
    assert worker_metric(worker.url, "streamrec_erased_events_dropped_total") == 2

    # --- after the erasure: a new user ----------------------------------------------------------------
    with EventProducer(settings) as producer:
        producer.send("click", {"event_id": f"{user}-click-new", "user_id": user, "item_id": "book-7",
                                "ts": erased_at + 5.0, "schema": "v1"})
    wait_for(lambda: client.exists(Keys(settings.redis_prefix).user(user)), 60, "the new user's record")
    record = _user_record(client, settings, user)
    assert (record.events, record.history) == (1, ["book-7"])
    assert not client.exists(Keys(settings.redis_prefix).profile(user))  # the old profile stays erased

    # --- every topic redelivered to a new consumer group: the erasures repeat, nothing comes back ------
    worker.stop()
    records = _event_records(settings)
    dups = stats(settings).get("duplicates_total", 0)
    again = settings.model_copy(update={"app_id": f"{settings.app_id}-again"})
    try:
        second = worker_factory(again, name="redelivery").start()
        wait_for(lambda: stats(settings).get("duplicates_total", 0) >= dups + records, 120,
                 f"all {records} event records read again (each a duplicate)")
        wait_for(lambda: worker_metric(second.url, "streamrec_erasures_total") == 2, 60, "both requests read again")
        record = _user_record(client, settings, user)
        assert record is not None and (record.events, record.history) == (1, ["book-7"]), \
            "the redelivered erasure erased the new user"
        assert worker_metric(second.url, 'streamrec_erasures_total{status="already_erased"}') == 2
        assert not _traces(settings, ml_user) and not client.exists(Keys(settings.redis_prefix).profile(user))
        assert stats(settings).get("events_total:click", 0) == before.get("events_total:click", 0) + 1
        second.stop()
    finally:
        drop_topics(again)
    # the key is never logged; the erasure's log lines name the request, not the user
    logs = worker.log_path.read_text() + second.log_path.read_text() + log.read_text()
    assert key not in logs
    lines = [line for line in logs.splitlines() if "erasure request" in line]
    assert len(lines) == 4 and not [line for line in lines if user in line or f" {ml_user} " in line]


def _user_record(client, settings, user):
    from stream.state.packing import unpack_user

    blob = client.get(Keys(settings.redis_prefix).user(user))
    return None if blob is None else unpack_user(user, blob, dim=settings.mf_factors)
