"""The closed loop on the real stack: simulated users shown what a real worker serves.

A small world is seeded the way ``streamrec-produce simulate`` seeds one (profiles, catalogue,
open-stream warm-up, applied by the worker), then 30 users x 3 rounds ask for their lists and
respond to them. Every event the loop published must name a list the worker actually sent on
the recommendations topic (its rec_id, as an answer to one of the loop's requests for that
user), at the position the item had in that list; no request may hang; the worker must accept
and apply every event. Before the worker starts, one round's requests go unanswered: the round
ends at its timeout and counts them, and their answers, when the worker comes up and answers
them, are counted late and never shown.
"""

from __future__ import annotations

import json
import time

import pytest

from consumers.answers import RequestAnswers
from consumers.sdk import TopicReader, dead_letters
from producers.closed_loop import ClosedLoop, LoopConfig, seed_stack
from producers.response import ResponseModel
from producers.sdk import EventProducer
from producers.simulator import World, WorldConfig
from stream.contract import TOPIC_OF
from tests.helpers import applied, wait_for

pytestmark = pytest.mark.integration

WARMUP = 3000


def _events(settings, run_id: str) -> list[tuple[str, dict]]:
    out = []
    for kind in ("impression", "click", "dwell", "skip", "purchase"):
        for msg in TopicReader(TOPIC_OF[kind], settings).read():
            body = json.loads(msg.value)
            if body["event_id"].startswith(f"{run_id}-e"):
                out.append((kind, body))
    return out


def test_a_closed_loop_shows_exactly_what_the_worker_served(isolated, worker_factory):
    world = World(WorldConfig(n_users=200, n_items=120, n_segments=3, n_categories=4, seed=7))
    model = ResponseModel(purchase_offset=-3.0)  # purchases far more often than by default: dozens to check
    with EventProducer(isolated) as producer, RequestAnswers(isolated) as answers:
        # No worker yet: the round waits its timeout, no longer, and counts every request unanswered.
        nobody = ClosedLoop(world, producer, answers, LoopConfig(users=5, rounds=1, answer_timeout=2.0,
                                                                 run_id="early"), model)
        started = time.monotonic()
        early = nobody.run()
        assert time.monotonic() - started < 10.0
        assert early["unanswered"] == 5 and early["lists"] == 0 and early["events"] == 0

        worker_factory(isolated).start()
        sent = seed_stack(world, producer, isolated, warmup_events=WARMUP, run_id="warm", wait_seconds=60.0)
        assert sent == WARMUP
        loop = ClosedLoop(world, producer, answers, LoopConfig(users=30, rounds=3, seed=11, answer_timeout=20.0,
                                                               run_id="cl"), model)
        summary = loop.run()

    print(json.dumps(summary, indent=1))
    assert summary["asked"] == 90 and summary["unanswered"] == 0, summary
    assert all(r.round_trip_seconds < 20.0 and r.answered == r.asked for r in loop.rounds)
    assert summary["late_answers"] == 5  # the early round's, answered once the worker came up
    assert summary["lists"] == 90 - summary["empty_lists"] and summary["lists"] >= 80, summary

    # What the worker sent: every answer to the loop's requests, by rec_id.
    served = {}
    for msg in TopicReader("recommendations", isolated).read():
        body = json.loads(msg.value)
        if str(body.get("request_id", "")).startswith("cl-"):
            served[body["rec_id"]] = body
    assert len(served) == 90

    shown = {rec.rec_id: rec for rec in loop.lists}
    assert set(shown) <= set(served)
    assert all(list(rec.items) == [x["item_id"] for x in served[rec.rec_id]["items"]] for rec in shown.values())

    events = _events(isolated, "cl")
    assert len(events) == summary["events"]
    ts = sorted((p["ts"], p["event_id"]) for _, p in events)
    assert len({t for t, _ in ts}) == len(ts)  # strictly increasing event times
    assert [int(e.rsplit("e", 1)[1]) for _, e in ts] == list(range(len(ts)))  # in the order they happened
    counts = {"impression": 0, "click": 0, "dwell": 0, "skip": 0, "purchase": 0}
    for kind, p in events:
        counts[kind] += 1
        rec_id = p["context"]["rec_id"]
        rec = served[rec_id]  # a list the worker actually served...
        assert rec["user_id"] == p["user_id"] and rec["request_id"] == shown[rec_id].request_id
        order = [x["item_id"] for x in sorted(rec["items"], key=lambda x: x["rank"])]
        if kind == "impression":
            assert p["items"] == order and p["rec_id"] == rec_id  # ...shown in its served order...
        else:
            assert order[p["context"]["position"]] == p["item_id"]  # ...at its served place (0-based)
        if kind == "purchase":  # at the world's price
            assert (p["value"], p["currency"]) == (float(world.item_price[world.item_index(p["item_id"])]), "EUR")
    assert counts["impression"] == summary["lists"]
    assert counts["click"] == summary["clicks"] > 0 and counts["purchase"] == summary["purchases"] > 0
    assert summary["revenue"] == round(sum(p["value"] for kind, p in events if kind == "purchase"), 2)
    assert counts["dwell"] + counts["skip"] == counts["click"]

    # The worker accepted every event and applied them all.
    assert list(dead_letters(isolated)) == []
    total = WARMUP + summary["events"]
    wait_for(lambda: applied(isolated) >= total, 30, f"{total} events applied")
