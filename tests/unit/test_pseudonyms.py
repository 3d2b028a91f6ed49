"""Pseudonymous ids: the scheme, and that the producer and consumer SDKs apply it."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from pydantic import ValidationError

from stream.config import Settings
from stream.pseudonyms import HEX_CHARS, Pseudonyms, is_pseudonym, pseudonym

KEY = "0123456789abcdef-unit-test-key"


def test_the_scheme_is_hmac_sha256_truncated_with_a_prefix_and_a_tag_per_kind():
    digest = hmac.new(KEY.encode(), b"user\x00alice", hashlib.sha256).hexdigest()
    assert pseudonym("alice", KEY.encode()) == "p1_" + digest[:32]
    event = hmac.new(KEY.encode(), b"event\x00alice", hashlib.sha256).hexdigest()
    assert pseudonym("alice", KEY.encode(), "event") == "e1_" + event[:32]
    assert HEX_CHARS == 32 and len(pseudonym("x" * 10_000, KEY.encode())) == 35  # fits the contract's 128


def test_another_key_gives_other_pseudonyms_and_unicode_ids_work():
    assert pseudonym("alice", KEY.encode()) != pseudonym("alice", (KEY + "2").encode())
    assert is_pseudonym(pseudonym("zoë@exämple.org", KEY.encode()))


def test_a_pseudonym_passes_through_and_empty_ids_or_keys_are_refused():
    p = pseudonym("alice", KEY.encode())
    assert pseudonym(p, KEY.encode()) == p
    assert not is_pseudonym(p.upper()) and not is_pseudonym(p + "0") and not is_pseudonym("p1_xyz")
    with pytest.raises(ValueError, match="empty"):
        pseudonym("", KEY.encode())
    with pytest.raises(ValueError, match="STREAMREC_ID_KEY"):
        pseudonym("alice", b"")
    with pytest.raises(ValueError, match="kind"):
        pseudonym("alice", KEY.encode(), "item")


def test_payload_replaces_user_and_event_ids_only_and_leaves_the_input_alone():
    ids = Pseudonyms(KEY.encode())
    event = {"event_id": "alice-click-1", "user_id": "alice", "item_id": "book", "ts": 1.0,
             "context": {"session_id": "s1"}}
    out = ids.payload(event)
    assert out["user_id"] == pseudonym("alice", KEY.encode())
    assert out["event_id"] == pseudonym("alice-click-1", KEY.encode(), "event")
    assert out["item_id"] == "book" and out["context"] == {"session_id": "s1"}
    assert event["user_id"] == "alice"  # not mutated
    assert ids.payload({"user_id": "", "event_id": 7})["user_id"] == ""  # left for validation to reject
    assert Pseudonyms(None).payload(event) is event and not Pseudonyms(None).enabled


def test_the_key_is_a_secret_of_at_least_16_characters():
    assert "0123456789abcdef" not in repr(Settings(id_key=KEY))
    with pytest.raises(ValidationError, match="STREAMREC_ID_KEY has 5 characters"):
        Settings(id_key="short")


class _FakeProducer:
    """Stands in for confluent_kafka.Producer: records what would be sent."""

    sent: list = []

    def __init__(self, conf):
        self.conf = conf

    def produce(self, topic, value=None, key=None, on_delivery=None):
        _FakeProducer.sent.append((topic, key, value))

    def poll(self, timeout=0):
        return 0

    def flush(self, timeout=0):
        return 0


def test_the_producer_sdk_sends_pseudonyms_only(monkeypatch):
    import confluent_kafka

    from producers.sdk import EventProducer

    monkeypatch.setattr(confluent_kafka, "Producer", _FakeProducer)
    _FakeProducer.sent = []
    producer = EventProducer(Settings(id_key=KEY, topic_prefix=""))  # the bare names, whatever the environment
    producer.send("click", {"event_id": "ml100k-alice-9-click", "user_id": "alice", "item_id": "9", "ts": 1.0,
                            "schema": "v1"})
    producer.send("item", {"event_id": "item-9", "item_id": "9", "ts": 1.0, "schema": "v1", "categories": ["x"],
                           "created_at": 1.0})
    producer.request_recommendations("alice", k=3, request_id="r1")
    producer.close()
    (t1, k1, v1), (t2, k2, v2), (t3, k3, v3) = _FakeProducer.sent
    alice = pseudonym("alice", KEY.encode())
    assert (t1, k1) == ("clicks", alice.encode()) and json.loads(v1)["user_id"] == alice
    assert b"alice" not in v1 and b"ml100k" not in v1
    assert k2 == b"9" and json.loads(v2)["item_id"] == "9"  # item ids are not personal: as given
    assert (t3, k3) == ("rec-requests", alice.encode()) and json.loads(v3)["user_id"] == alice


def test_the_consumer_sdk_looks_users_up_by_their_pseudonym(monkeypatch):
    from consumers import sdk

    keys = []

    def fake_read(self, *, key=None, **kwargs):
        keys.append(key)
        return iter(())

    monkeypatch.setattr(sdk.TopicReader, "read", fake_read)
    assert sdk.latest_recommendations("alice", Settings(id_key=KEY)) is None
    assert sdk.latest_recommendations("alice", Settings()) is None
    assert keys == [pseudonym("alice", KEY.encode()).encode(), b"alice"]


def test_the_embedding_reader_looks_users_up_by_their_pseudonym():
    from consumers.embeddings import EmbeddingReader
    from stream.state.keys import Keys

    asked = []

    class FakeRedis:
        def pipeline(self, transaction=False):
            return self

        def hgetall(self, key):
            asked.append(key)

        def execute(self):
            return [None] * len(asked)

    reader = EmbeddingReader(FakeRedis(), Keys("p"), Pseudonyms(KEY.encode()))
    assert reader.user("alice") is None
    assert asked == [Keys("p").embedding("user", pseudonym("alice", KEY.encode()))]
