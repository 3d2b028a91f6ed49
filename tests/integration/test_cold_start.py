"""Cold start in a real worker: a new item from the catalogue starts from its categories'
mean row and, once it earns clicks, enters other users' top-10 within a stated number of
clicks; exploration puts fresh items in a bounded share of lists."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pytest

from consumers.embeddings import EmbeddingReader
from producers.sdk import EventProducer
from stream.contract import make_event
from tests.helpers import applied, wait_for

pytestmark = pytest.mark.integration

ITEMS = {"A": [f"a{j}" for j in range(30)], "B": [f"b{j}" for j in range(30)]}
USERS = {"A": [f"ua{j}" for j in range(40)], "B": [f"ub{j}" for j in range(40)]}
WATCHER = "ua0"
#: Clicks by other A-lovers the new item may need to enter the watcher's top-10. Measured
#: 2026-12-06 (a quarter of the trials scored, the default): 21, 22, 23, 25, 25, 27, and once
#: still 11th after 25; at 840d6d8 25, 0 and 0 (the batches' timing moves the learning). The
#: limit was 25, which failed CI once; 40 leaves room above what was measured.
CLICK_BUDGET = 40


def _top(worker, user: str, k: int = 10) -> list[dict]:
    with urllib.request.urlopen(f"{worker.url}/recommendations/{user}?k={k}", timeout=5) as resp:
        return json.loads(resp.read())["items"]


def _item(item_id: str, categories: list[str]) -> dict:
    return {"event_id": f"meta-{item_id}", "user_id": "catalogue", "item_id": item_id, "ts": 1.0, "schema": "v1",
            "categories": categories, "created_at": 1.0}


def test_a_new_item_that_earns_clicks_enters_the_top_k(isolated, worker_factory):
    settings = isolated.model_copy(update={"explore_share": 0.0})
    worker = worker_factory(settings).start()
    reader = EmbeddingReader.from_settings(settings)
    rng = np.random.default_rng(3)
    with EventProducer(settings) as producer:
        for group, items in ITEMS.items():
            for item in items:
                producer.send("item", _item(item, [group]))
        n = 0
        for _ in range(40):
            for group in ("A", "B"):
                for user in rng.choice(USERS[group], 30):
                    producer.send("click", make_event("click", event_id=f"t{n}", user_id=str(user),
                                                      item_id=str(rng.choice(ITEMS[group])), ts=1000.0 + n))
                    n += 1
    wait_for(lambda: applied(settings) >= n, 90, "the training clicks applied")
    assert "new" not in [e["item_id"] for e in _top(worker, WATCHER)]

    with EventProducer(settings) as producer:
        producer.send("item", _item("new", ["A"]))
    new = wait_for(lambda: reader.item("new"), 30, "the new item's row, started by its owner")
    a_mean = reader.items(ITEMS["A"])[1].mean(axis=0)
    b_mean = reader.items(ITEMS["B"])[1].mean(axis=0)
    assert np.linalg.norm(new.vector - a_mean) < np.linalg.norm(new.vector - b_mean)  # near its category

    clicks, seen = 0, []
    while "new" not in [e["item_id"] for e in _top(worker, WATCHER)]:
        row = reader.item("new")
        seen.append((clicks, [e["item_id"] for e in _top(worker, WATCHER, 40)].index("new")
                     if "new" in [e["item_id"] for e in _top(worker, WATCHER, 40)] else None,
                     getattr(row, "updated_at", None)))
        assert clicks < CLICK_BUDGET, (f"the new item is not in an A-lover's top-10 after {CLICK_BUDGET} clicks; (clicks, its rank "
                             f"in the top-40 or None, its row's update time) along the way: {seen}; worker log:\n"
                             f"{worker.log_tail(60)}")
        with EventProducer(settings) as producer:
            producer.send("click", make_event("click", event_id=f"new{clicks}", user_id=USERS["A"][1 + clicks % 39],
                                              item_id="new", ts=5000.0 + clicks))
        n += 1
        clicks += 1
        wait_for(lambda: applied(settings) >= n, 30, "the click applied")
        time.sleep(1.0)  # the owner publishes item rows every STREAMREC_ITEM_PUBLISH_SECONDS
    print(f"the new item entered the watcher's top-10 after {clicks} clicks by other users")


def test_exploration_puts_a_fresh_item_in_the_last_slot(isolated, worker_factory):
    settings = isolated.model_copy(update={"explore_share": 1.0})  # every list explores
    worker = worker_factory(settings).start()
    with EventProducer(settings) as producer:
        for group in ("A", "B"):
            for item in ITEMS[group][:10]:
                producer.send("item", _item(item, [group]))
        for k in range(800):  # every old item earns plenty of positive signal; u* like A, v* like B
            group = "A" if k % 2 else "B"
            user = f"{'u' if group == 'A' else 'v'}{(k // 2) % 30}"
            producer.send("click", make_event("click", event_id=f"x{k}", user_id=user,
                                              item_id=ITEMS[group][(k // 2) % 10], ts=1000.0 + k))
    wait_for(lambda: applied(settings) >= 800, 60, "the clicks applied")
    with EventProducer(settings) as producer:
        producer.send("item", _item("fresh", ["B"]))  # no click yet, and far from u1's taste
    wait_for(lambda: EmbeddingReader.from_settings(settings).item("fresh"), 30, "the fresh item's row")
    time.sleep(1.0)  # the row reaches the worker's copy through item-factors
    items = _top(worker, "u1", 5)  # an A-lover with history
    assert items[-1]["item_id"] == "fresh" and items[-1]["reason"] == {"kind": "explore"}, items
    assert all(e["reason"]["kind"] != "explore" for e in items[:-1])
