"""Purchases and list context on the real stack: through the worker's ingest agent into Redis,
or to events.dlq with their reason; old-style events still applied beside them."""

from __future__ import annotations

import json
import urllib.request

import pytest
import redis

from consumers.sdk import dead_letters
from producers.sdk import EventProducer
from stream.contract import encode, make_event
from stream.state.keys import Keys
from stream.state.packing import unpack_user
from tests.helpers import applied, stats, wait_for

pytestmark = pytest.mark.integration

TS = 1_700_000_000.0


def _bad(event_id: str, **fields) -> dict:
    """A purchase payload of user u1 with ``fields`` (not validated: it is meant to be refused)."""
    return {"event_id": event_id, "user_id": "u1", "item_id": "i9", "ts": TS + 50, "schema": "v1", **fields}


def test_purchases_are_applied_bad_ones_dead_lettered_and_old_style_events_still_applied(isolated, worker_factory):
    from confluent_kafka.admin import AdminClient

    topics = AdminClient(isolated.kafka_client_config()).list_topics(timeout=10).topics
    # co-partitioned with the other interaction topics: the same partition count, so the same user's partition
    assert len(topics[isolated.topic("purchases")].partitions) == len(topics[isolated.topic("clicks")].partitions)

    worker = worker_factory(isolated).start()
    with EventProducer(isolated, validate=False) as producer:
        # what producers sent before purchases: a simulator-style click (0-based position, no
        # rec_id), a click without context, an impression naming its list at the top level
        producer.send("impression", make_event("impression", event_id="im1", user_id="u1", items=["a", "b", "c"],
                                               rec_id="r1", ts=TS, context={"session_id": "s1", "device": "tv"}))
        producer.send("click", make_event("click", event_id="c1", user_id="u1", item_id="a", ts=TS + 1,
                                          context={"session_id": "s1", "device": "tv", "position": 0}))
        producer.send("click", make_event("click", event_id="c2", user_id="u1", item_id="b", ts=TS + 2))
        # a purchase through the SDK's own call, linked to the list; one with nothing but its item
        purchase_id = producer.purchase("u1", "c", value=19.99, currency="EUR", context={"rec_id": "r1", "position": 2},
                                        ts=TS + 3)
        producer.purchase("u2", "c", event_id="p-bare", ts=TS + 4)
        # refused, each for one reason
        producer.send("purchase", _bad("bad-value", value=-5, currency="EUR"))
        producer.send("purchase", _bad("bad-currency", value=5, currency="eur"))
        producer.send("purchase", _bad("no-currency", value=5))
        producer.send("purchase", _bad("bad-position", context={"rec_id": "r1", "position": 100}))
        producer.send("purchase", _bad("float-position", context={"position": 1.0}))
        producer.send("purchase", _bad("bad-context", context="r1"))
        producer.send("impression", make_event("impression", event_id="im-bad", user_id="u1", items=["a"], rec_id="r1",
                                               ts=TS + 60) | {"context": {"rec_id": "r2"}})

    letters = wait_for(lambda: (lambda d: d if len(d) >= 7 else None)(list(dead_letters(isolated))), 60,
                       "seven dead letters")
    by_id = {json.loads(d.value)["event_id"]: d for d in letters}
    assert len(letters) == 7
    expected = {
        "bad-value": ("out_of_range", "'value'"),
        "bad-currency": ("out_of_range", "'currency'"),
        "no-currency": ("missing_field", "'currency'"),
        "bad-position": ("out_of_range", "'context.position'"),
        "float-position": ("wrong_type", "'context.position'"),
        "bad-context": ("wrong_type", "'context'"),
        "im-bad": ("field_mismatch", "'context.rec_id'"),
    }
    assert {k: d.reason for k, d in by_id.items()} == {k: reason for k, (reason, _) in expected.items()}
    for event_id, (_, field) in expected.items():
        assert field in by_id[event_id].detail, (event_id, by_id[event_id].detail)
        topic = "impressions" if event_id == "im-bad" else "purchases"
        assert by_id[event_id].source_topic == isolated.topic(topic)
    assert by_id["bad-value"].value == encode(_bad("bad-value", value=-5, currency="EUR"))  # the original bytes

    # the topics' partitions are read in no fixed order: wait for all five valid events
    wait_for(lambda: applied(isolated) == 5, 60, "the five valid events applied")
    counted = stats(isolated)
    assert [counted.get(f"events_total:{t}") for t in ("impression", "click", "purchase")] == [1, 2, 2]

    # the purchase marked its item seen, as the clicks did theirs; the impression marked nothing
    client = redis.Redis.from_url(isolated.redis_url, **isolated.redis_kwargs())
    u1 = unpack_user("u1", client.get(Keys(isolated.redis_prefix).user("u1")), dim=isolated.mf_factors)
    assert len(u1.seen) == 3 and all(item in u1.seen for item in "abc")  # seen holds hashed keys: no listing
    assert u1.events == 4 and set(u1.history) == {"a", "b", "c"}  # the purchase is a positive, in the history
    u2 = unpack_user("u2", client.get(Keys(isolated.redis_prefix).user("u2")), dim=isolated.mf_factors)
    assert len(u2.seen) == 1 and "c" in u2.seen

    # and the worker's KPIs count purchases per segment, beside the other types (counted just
    # after the batch's commit, so waited for)
    def purchases_counted() -> float:
        with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as resp:
            lines = resp.read().decode().splitlines()
        return sum(float(line.split()[-1]) for line in lines
                   if line.startswith("streamrec_events_total{") and 'type="purchase"' in line)

    wait_for(lambda: purchases_counted() == 2.0, 30, "streamrec_events_total of type purchase at 2")
    assert purchase_id and len(purchase_id) == 32
