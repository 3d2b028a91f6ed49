"""Pseudonymous ids (STREAMREC_ID_KEY) on the real stack: the producer SDK and the MovieLens
replay publish with the key, a worker (which does not hold the key) applies the events, and
then no raw user id, and no event id that embeds one, is anywhere: not in any Redis key or
value under the test's prefix (read by type), not in any record of any of the test's topics
(keys, values, headers), not in the worker's log or the CLIs' output. The consumer SDK still
finds each user's list and row by their raw id.

The worker runs hardened: a bearer token, and /health and /metrics closed too.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid

import pytest
from pydantic import SecretStr

from stream.pseudonyms import is_pseudonym, pseudonym
from tests.helpers import applied, run_module, wait_for
from tests.scan import json_field_values, kafka_contents, redis_contents
from tests.secure import new_secret

pytestmark = pytest.mark.integration

REPLAY_RATINGS = 300


_run = run_module


def _movielens_users(limit: int) -> list[str]:
    from producers.replay import movielens_stream
    from stream.evaluation.datasets import movielens_100k_dir

    return sorted({payload["user_id"] for _, payload in movielens_stream(movielens_100k_dir(), limit=limit)})


def test_no_raw_id_reaches_kafka_redis_or_logs(isolated, worker_factory, tmp_path):
    from consumers.embeddings import EmbeddingReader
    from consumers.sdk import latest_recommendations, recommendations, served_recommendations
    from producers.sdk import EventProducer

    key = new_secret("idkey")
    settings = isolated.model_copy(update={"id_key": SecretStr(key), "http_token": SecretStr(new_secret("token")),
                                           "http_open_health_metrics": False})
    # The worker gets no key: it only ever sees pseudonyms.
    worker = worker_factory(settings.model_copy(update={"id_key": SecretStr("")}), name="pseudonyms")
    worker.start()
    cli_log = tmp_path / "cli.log"
    tag = uuid.uuid4().hex[:6]

    # --- the producer SDK: distinctive raw ids, and event ids that embed them -----------------
    raw_users = [f"alice.{tag}@example.org", f"bob-{tag}", f"carol_{tag}"]
    with EventProducer(settings) as producer:
        producer.send("user", {"event_id": f"profile-{raw_users[0]}", "user_id": raw_users[0], "ts": 1.0,
                               "schema": "v1", "attributes": {"segment": "readers"}})
        n = 0
        for round_ in range(6):
            for u, user in enumerate(raw_users):
                for kind, extra in (("click", {}), ("dwell", {"seconds": 45.0})):
                    n += 1
                    producer.send(kind, {"event_id": f"{user}-{kind}-{round_}", "user_id": user,
                                         "item_id": f"book-{(round_ + 2 * u) % 8}", "ts": 100.0 + n, "schema": "v1", **extra})

    # --- the replay producer: MovieLens-100K, a slice ------------------------------------------
    out = _run(settings, cli_log, "producers.cli", "replay", "movielens-100k", "--limit", str(REPLAY_RATINGS), "--quiet")
    assert out.returncode == 0, out.stderr
    replayed = json.loads(out.stdout.splitlines()[-1])["sent"]
    ml_users = _movielens_users(REPLAY_RATINGS)
    wait_for(lambda: applied(settings) >= n + replayed, 120, "every SDK and replayed event applied")
    with EventProducer(settings) as producer:
        request_id = producer.request_recommendations(raw_users[1], k=3)
    answer = wait_for(lambda: next((r for r in recommendations(settings) if r.get("request_id") == request_id), None),
                      30, "the worker's answer to the SDK's request")
    assert answer["user_id"] == pseudonym(raw_users[1], key.encode()) and len(answer["items"]) == 3

    # --- nothing stored names a raw id (checked before any lookup by raw id) --------------------
    stored = redis_contents(settings) + kafka_contents(settings)
    _assert_no_raw_ids(stored, [("worker log", worker.log_path), ("CLI output", cli_log)], raw_users)
    # MovieLens ids are numbers that are item ids too, so they are checked where users are named:
    # every user_id in a JSON value, every key of a user-keyed topic, every Redis key about a user.
    user_keyed = {settings.topic(t) for t in ("clicks", "dwell", "skips", "impressions", "purchases", "users",
                                               "recommendations", "rec-requests")}
    for s in stored:
        for part in s.parts:
            for value in json_field_values(part, "user_id"):
                assert is_pseudonym(value), f"{s.where}: user_id {value!r} is not a pseudonym"
        if s.kind == "record" and s.where.split("[")[0] in user_keyed:
            assert is_pseudonym(s.parts[0].decode()), f"{s.where}: key {s.parts[0]!r} is not a pseudonym"
        if s.kind != "record":
            tokens = re.split(r"[:{}]", s.where)
            if "user" in tokens:
                assert any(is_pseudonym(t) for t in tokens), f"Redis key {s.where} names a user without a pseudonym"
    # ... and each of them is there under its pseudonym: the checks above looked at the right places.
    redis_keys = " ".join(s.where for s in stored if s.kind != "record")
    for user in raw_users + ml_users:
        assert pseudonym(user, key.encode()) in redis_keys, f"no Redis key for {user}'s pseudonym"
    # The worker remembers every applied event (for producer resends) by a keyed hash of its id
    # (stream/state/tokens.py), so not even the pseudonymous event ids are kept.
    event_id_sets = re.compile(re.escape(settings.redis_prefix) + r":ids:\d+")  # not the item owners' update ids
    remembered = [p for s in stored if s.kind == "set" and event_id_sets.fullmatch(s.where) for p in s.parts[1:]]
    assert len(remembered) >= n + replayed, "every applied event is remembered"
    assert all(len(p) == 16 for p in remembered), "an event id is remembered as its 16-character token"
    # a pseudonymous event id is "e1_" and 32 hex characters; a token, 16 random base64url characters,
    # holds "e1_" about once in 20,000 (a plain substring check failed on one in CI)
    pseudonymous_event_id = re.compile(rb"e1_[0-9a-f]{32}")
    assert not [s.where for s in stored if s.kind != "record" and (
        any(pseudonymous_event_id.search(part) for part in s.parts) or pseudonymous_event_id.search(s.where.encode()))]

    # --- the consumer SDK and CLI find users by their raw id ------------------------------------
    for user in (raw_users[0], ml_users[0]):
        rec = wait_for(lambda u=user: (r := latest_recommendations(u, settings)) and r["items"] and r, 30,
                       f"a list for {user}, by raw id")
        assert rec["user_id"] == pseudonym(user, key.encode())
    served = served_recommendations(raw_users[2], 5, settings=settings)
    assert served["user_id"] == pseudonym(raw_users[2], key.encode()) and served["items"]
    assert EmbeddingReader.from_settings(settings).user(raw_users[0]) is not None
    cli = _run(settings, cli_log, "consumers.cli", "recs", "--user", raw_users[2])
    assert cli.returncode == 0 and json.loads(cli.stdout)["user_id"] == pseudonym(raw_users[2], key.encode())
    cli = _run(settings, cli_log, "consumers.cli", "served", "--user", ml_users[0], "--k", "3")
    assert cli.returncode == 0 and len(json.loads(cli.stdout)["items"]) == 3, cli.stderr

    # --- the hardened worker's HTTP: no token, no answer; /health and /metrics closed too ---------
    for path in (f"/recommendations/{pseudonym(raw_users[0], key.encode())}", "/health", "/metrics"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{worker.url}{path}", timeout=5)
        assert refused.value.code == 401
        with urllib.request.urlopen(urllib.request.Request(f"{worker.url}{path}", headers=settings.http_headers()),
                                    timeout=5) as ok:
            assert ok.status == 200
    # The lookups by raw id left no raw id behind either.
    _assert_no_raw_ids(redis_contents(settings) + kafka_contents(settings),
                       [("worker log", worker.log_path), ("CLI output", cli_log)], raw_users)


def _assert_no_raw_ids(stored, logs, raw_users):
    texts = [(name, path.read_bytes()) for name, path in logs]
    for user in raw_users:
        found = [s.where for s in stored if s.contains(user.encode())]
        found += [name for name, text in texts if user.encode() in text]
        assert not found, f"raw id {user!r} found in {found[:5]}"
    # The replay's event ids embed its raw ids (ml100k-<user>-<item>-<type>): none is left.
    assert not [s.where for s in stored if s.contains(b"ml100k-")]
    assert not [name for name, text in texts if b"ml100k-" in text]
