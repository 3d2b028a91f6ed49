"""The producer and consumer command lines, end to end through a real worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from producers.sdk import EventProducer
from tests.helpers import applied, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _run(settings, module, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, input=stdin,
                          env=settings.as_env(), cwd=ROOT, timeout=120)


def test_file_publish_then_read_recommendations_and_dead_letters(isolated, worker_factory, tmp_path):
    worker_factory(isolated).start()
    lines = [
        {"type": "click", "event_id": "f1", "user_id": "ann", "item_id": "book", "ts": 10.0, "schema": "v1"},
        {"type": "click", "event_id": "f2", "user_id": "ben", "item_id": "film", "ts": 11.0, "schema": "v1"},
        {"type": "dwell", "event_id": "f3", "user_id": "ben", "item_id": "book", "ts": 12.0, "schema": "v1",
         "seconds": 90},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = _run(isolated, "producers", "file", str(path), "--quiet")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"sent": 3, "delivered": 3}

    def ann_list():
        res = _run(isolated, "consumers", "recs", "--user", "ann")
        return json.loads(res.stdout) if res.returncode == 0 else None

    rec = wait_for(ann_list, 60, "ann's list via streamrec-consume")
    assert [i["item_id"] for i in rec["items"]] == ["film"]  # ann clicked "book": not recommended back

    with EventProducer(isolated, validate=False) as producer:
        producer.send_raw("skips", b"ann", b"garbage")
    dead = wait_for(lambda: _run(isolated, "consumers", "dlq").stdout.strip(), 60, "a dead letter via the CLI")
    record = json.loads(dead.splitlines()[0])
    assert record["reason"] == "not_json" and record["value"] == "garbage"
    assert record["source_topic"] == isolated.topic("skips")


def test_file_with_an_invalid_event_fails_clearly_before_sending(isolated):
    bad = json.dumps({"type": "dwell", "event_id": "x", "user_id": "u", "item_id": "i", "ts": 1.0, "schema": "v1",
                      "seconds": "long"})
    out = _run(isolated, "producers", "file", "-", "--quiet", stdin=bad + "\n")
    assert out.returncode == 2
    assert "wrong_type" in out.stderr and "'seconds'" in out.stderr and "Traceback" not in out.stderr


def test_movielens_replay_reaches_the_worker(isolated, worker_factory):
    """The real MovieLens-100K files (from the recbole wheel, cached) through the replay CLI."""
    import redis

    from stream.state.keys import Keys

    isolated = isolated.model_copy(update={"segment_attributes": "age_band"})
    worker_factory(isolated).start()
    out = _run(isolated, "producers", "replay", "movielens-100k", "--limit", "400", "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    sent = json.loads(out.stdout)["sent"]
    assert sent >= 400  # ratings >= 4 become two events (click + dwell)
    client = redis.Redis.from_url(isolated.redis_url)
    keys = Keys(isolated.redis_prefix)
    wait_for(lambda: applied(isolated) == sent, 90, f"{sent} replayed events applied")
    # profiles are another topic, applied at their own pace
    wait_for(lambda: client.hget(keys.profile("196"), "age_band") == b"45-49", 60,
             "user 196's profile (49 in ml-100k.user)")
    wait_for(lambda: client.sismember(keys.segments, "age_band:25-34"), 60, "segment age_band:25-34")


def test_rec_requests_are_answered_and_bad_ones_dead_lettered(isolated, worker_factory):
    worker_factory(isolated).start()
    with EventProducer(isolated) as producer:
        for n, (user, item) in enumerate([("a", "x"), ("b", "x"), ("b", "y")]):
            producer.send("click", {"event_id": f"r{n}", "user_id": user, "item_id": item, "ts": 1.0 + n,
                                    "schema": "v1"})
        producer.send_raw("rec-requests", b"a", b'{"schema": "v1", "request_id": "bad", "user_id": "a", "k": 0}')
    import redis

    from stream.state.keys import Keys

    stats = redis.Redis.from_url(isolated.redis_url)
    wait_for(lambda: stats.hget(Keys(isolated.redis_prefix).stats, "events_total:click") == b"3", 30, "3 clicks applied")
    out = _run(isolated, "producers", "request", "--user", "a", "--k", "1")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["trigger"] == "request" and answer["request_id"]
    assert [i["item_id"] for i in answer["items"]] == ["y"]  # a has seen x
    dead = wait_for(lambda: _run(isolated, "consumers", "dlq").stdout.strip(), 60, "the bad request dead-lettered")
    record = json.loads(dead.splitlines()[0])
    assert record["reason"] == "out_of_range" and record["source_topic"] == isolated.topic("rec-requests")


def test_worker_loads_a_tuned_model_config_and_refuses_a_broken_one(isolated, worker_factory, tmp_path):
    import urllib.request

    config = ROOT / "stream/models/configs/movielens-100k.json"
    worker = worker_factory(isolated.model_copy(update={"model_config_path": str(config)})).start()
    with urllib.request.urlopen(f"{worker.url}/health", timeout=5) as resp:
        health = json.loads(resp.read())
    assert health["model_config"]["model"] == "HybridRanker"
    assert health["model_config"]["path"] == str(config)

    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "streamrec-model-config/1", "model": "Magic", "params": {}}')
    out = subprocess.run([sys.executable, "-m", "stream.cli", "worker"], capture_output=True, text=True, timeout=60,
                         env=isolated.model_copy(update={"model_config_path": str(broken)}).as_env(), cwd=ROOT)
    assert out.returncode == 2
    assert "STREAMREC_MODEL_CONFIG_PATH" in out.stderr and "Magic" in out.stderr and "Traceback" not in out.stderr


def test_a_producer_app_that_forgets_close_still_delivers_on_exit(isolated):
    from consumers.sdk import TopicReader

    code = ("from producers.sdk import EventProducer\n"
            "p = EventProducer(linger_ms=2000)\n"  # a long linger: without the exit flush nothing would leave
            "p.send('click', {'event_id': 'x1', 'user_id': 'u', 'item_id': 'i', 'ts': 1.0, 'schema': 'v1'})\n")
    out = subprocess.run([sys.executable, "-c", code], env=isolated.as_env(), cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [m.key for m in TopicReader("clicks", isolated).read()] == [b"u"]
