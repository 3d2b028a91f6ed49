"""The closed loop without Kafka: a recording producer and scripted answers stand in for the
worker (the integration test, tests/integration/test_closed_loop.py, runs a real one)."""

from __future__ import annotations

import numpy as np
import pytest

from producers.closed_loop import ClosedLoop, LoopConfig
from producers.response import ResponseModel
from producers.simulator import World, WorldConfig
from stream.contract import validate_event

WORLD = World(WorldConfig(n_users=40, n_items=60, n_segments=2, n_categories=3, seed=2))
NO_PURCHASES = ResponseModel(purchases=False)


class RecordingProducer:
    """Validates and keeps what the loop sends, as the SDK would publish it."""

    def __init__(self):
        self.requests: list[tuple[str, int, str]] = []
        self.events: list[tuple[str, dict]] = []

    def request_recommendations(self, user_id, k=10, request_id=None):
        self.requests.append((user_id, k, request_id))
        return request_id

    def send(self, event_type, payload):
        validate_event(event_type, payload)
        self.events.append((event_type, payload))

    def flush(self, timeout=30.0):
        pass


class ScriptedAnswers:
    """Answers every request but those of ``silent`` users, with the user's truly best items
    (``variant`` "good") or worst items ("bad") by the user's index parity."""

    def __init__(self, producer, silent=()):
        self.producer = producer
        self.silent = set(silent)
        self.late = 0
        self.waited: list[float] = []

    def wait(self, request_ids, timeout):
        self.waited.append(timeout)
        out = {}
        for user_id, k, request_id in self.producer.requests:
            if request_id not in request_ids or user_id in self.silent:
                continue
            u = WORLD.user_ids.index(user_id)
            order = np.argsort(WORLD.affinity(u))
            good = u % 2 == 0
            items = order[::-1][:k] if good else order[:k]
            out[request_id] = {"schema": "v1", "user_id": user_id, "rec_id": f"rec-{request_id}", "model": "m",
                               "trigger": "request", "request_id": request_id, "experiment": "e1",
                               "variant": "good" if good else "bad",
                               "items": [{"item_id": WORLD.item_ids[i], "score": 1.0, "rank": r + 1}
                                         for r, i in enumerate(items)]}
        return out


def _run(config, silent=(), model=NO_PURCHASES):
    producer = RecordingProducer()
    answers = ScriptedAnswers(producer, silent)
    loop = ClosedLoop(WORLD, producer, answers, config, model)
    return loop, producer, answers, loop.run()


def test_every_event_names_the_served_list_and_the_position_it_was_shown_at():
    loop, producer, _, summary = _run(LoopConfig(users=10, rounds=3, k=8, seed=1, run_id="t"))
    served = {}
    ts = [p["ts"] for _, p in producer.events]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert len({p["event_id"] for _, p in producer.events}) == len(producer.events)
    for etype, p in producer.events:
        if etype == "impression":
            served[p["rec_id"]] = p["items"]
            assert p["context"] == {"rec_id": p["rec_id"]} and len(p["items"]) == 8
        else:
            items = served[p["context"]["rec_id"]]  # an impression of the same list came first
            assert items[p["context"]["position"]] == p["item_id"]  # 0-based, as the contract has it
    assert summary["lists"] == 30 == len(served) and summary["unanswered"] == 0
    assert summary["clicks"] == sum(e == "click" for e, _ in producer.events) > 0
    assert summary["clicks"] == summary["dwells"] + summary["skips"]
    assert [r.round for r in loop.lists] == sorted(r.round for r in loop.lists)


def test_the_truly_better_variant_earns_more_and_unanswered_requests_are_counted():
    silent = WORLD.user_ids[:40:3]
    loop, producer, answers, summary = _run(LoopConfig(users=30, rounds=4, seed=3, answer_timeout=2.5), silent)
    asked = len(producer.requests)
    assert asked == 120 and answers.waited == [2.5] * 4
    assert summary["unanswered"] == sum(u in silent for u, _, _ in producer.requests) > 0
    assert summary["lists"] == asked - summary["unanswered"]
    good, bad = summary["by_variant"]["e1/good"], summary["by_variant"]["e1/bad"]
    assert good["clicks_per_list"] > 2 * bad["clicks_per_list"]
    assert good["expected_clicks_per_list"] > 2 * bad["expected_clicks_per_list"]
    assert good["mean_affinity"] > bad["mean_affinity"] and good["ideal_affinity"] >= good["mean_affinity"]
    users = loop.per_user()
    assert all(len(row["variants"]) == 1 for row in users.values())
    assert sum(row["clicks"] for row in users.values()) == summary["clicks"]


def test_same_seed_same_run():
    runs = [_run(LoopConfig(users=12, rounds=2, seed=s, run_id="same"))[1].events for s in (5, 5, 6)]
    strip = [[(e, {k: v for k, v in p.items() if k != "ts"}) for e, p in run] for run in runs]
    assert strip[0] == strip[1] and strip[0] != strip[2]


def test_users_of_a_round_are_distinct_and_drawn_by_activity():
    _, producer, _, _ = _run(LoopConfig(users=20, rounds=30, seed=8))
    rounds: dict[str, set[str]] = {}
    for user_id, _, request_id in producer.requests:
        rounds.setdefault(request_id.rsplit("-", 1)[0], set()).add(user_id)
    assert all(len(users) == 20 for users in rounds.values())
    counts = {u: sum(r[0] == u for r in producer.requests) for u in WORLD.user_ids}
    busiest, quietest = int(np.argmax(WORLD.user_activity)), int(np.argmin(WORLD.user_activity))
    assert counts[WORLD.user_ids[busiest]] > counts[WORLD.user_ids[quietest]]


def test_purchases_are_valid_events_at_the_price_and_sum_to_the_revenue():
    loop, producer, _, summary = _run(LoopConfig(users=30, rounds=4, seed=4), model=ResponseModel())
    bought = [p for e, p in producer.events if e == "purchase"]
    assert len(bought) == summary["purchases"] > 0
    assert all(p["value"] == float(WORLD.item_price[WORLD.item_index(p["item_id"])]) and p["currency"] == "EUR"
               for p in bought)
    assert summary["revenue"] == round(sum(p["value"] for p in bought), 2) > 0
    assert summary["by_variant"]["e1/good"]["revenue"] > summary["by_variant"]["e1/bad"]["revenue"]


def test_a_config_that_makes_no_sense_is_refused():
    producer = RecordingProducer()
    with pytest.raises(ValueError, match="only 40 users"):
        ClosedLoop(WORLD, producer, ScriptedAnswers(producer), LoopConfig(users=41), NO_PURCHASES)
    with pytest.raises(ValueError, match="answer_timeout"):
        LoopConfig(answer_timeout=0)
