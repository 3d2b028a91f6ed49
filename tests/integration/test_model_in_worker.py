"""The online MF model inside real workers: rows in Redis and on item-factors, each event
learned exactly once, and the same quality from one worker as from two."""

from __future__ import annotations

import json
import math
import time
import urllib.request
import uuid

import pytest

from consumers.embeddings import EmbeddingReader
from producers.sdk import EventProducer
from producers.simulator import World, WorldConfig
from stream.engine.config import MODEL_NAMES
from stream.engine.messages import MODEL_VERSION
from stream.signals import signal_weight
from stream.contract import validate_event
from stream.topics import ensure_topics
from tests.helpers import applied, drop_topics, free_port, learned, wait_for, worker_metric

pytestmark = pytest.mark.integration


def _events(n: int, seed: int, users: int = 300, items: int = 120):
    world = World(WorldConfig(n_users=users, n_items=items, seed=seed))
    return list(world.generate(n, start_ts=1_700_000_000.0, step_seconds=0.05))


def _produce(settings, events, rate: float | None = None) -> int:
    """Publishes the events (at ``rate`` per second when given); returns how many carry a
    learning signal (click, dwell > 0, skip)."""
    start = time.monotonic()
    with EventProducer(settings) as producer:
        for n, (etype, payload) in enumerate(events):
            if rate is not None and n % 100 == 0:
                time.sleep(max(0.0, n / rate - (time.monotonic() - start)))
            producer.send(etype, payload)
    return sum(1 for etype, payload in events if signal_weight(validate_event(etype, payload)) != 0)


def _health(worker) -> dict:
    with urllib.request.urlopen(f"{worker.url}/health", timeout=5) as resp:
        return json.loads(resp.read())


def test_worker_learns_rows_into_redis_and_item_factors(isolated, worker_factory):
    worker = worker_factory(isolated).start()
    events = _events(3000, seed=5, users=80, items=40)
    signals = _produce(isolated, events)
    wait_for(lambda: applied(isolated) >= len(events), 60, "every event applied")
    wait_for(lambda: learned(isolated) >= signals, 30, "every signal learned")
    assert learned(isolated) == signals  # each event's effect once in the user rows

    reader = EmbeddingReader.from_settings(isolated)
    clicker = next(p["user_id"] for t, p in events if t == "click")
    user = reader.user(clicker)
    assert user is not None and user.version == MODEL_VERSION and user.vector.shape == (32,)
    clicked = sorted({p["item_id"] for t, p in events if t == "click"})
    ids, matrix = wait_for(lambda: (lambda r: r if len(r[0]) == len(clicked) else None)(reader.items(clicked)),
                           30, "item rows of every clicked item in Redis")
    assert matrix.shape == (len(clicked), 32)

    items = _health(worker)["items"]
    assert items["known"] >= len(clicked)
    # one worker owns every item partition: its own rows come back from item-factors and are passed over
    wait_for(lambda: (lambda i: i["rows_own_passed"] >= len(clicked) and i["rows_read"] == 0)(_health(worker)["items"]),
             30, "the worker's own item rows seen on item-factors and not decoded again")
    with urllib.request.urlopen(f"{worker.url}/recommendations/{clicker}?k=5", timeout=5) as resp:
        rec = json.loads(resp.read())
    assert rec["model"] == MODEL_NAMES["rerank"] and len(rec["items"]) == 5  # the default segment's re-ranker
    assert worker_metric(worker.url, "streamrec_model_loss_count") > 0
    assert worker_metric(worker.url, "streamrec_embedding_age_seconds_count") > 0


def _namespace(base, tag: str):
    settings = base.model_copy(update={"app_id": f"test-{tag}", "topic_prefix": f"t{tag}.",
                                       "redis_prefix": f"{base.redis_prefix}-{tag}", "web_port": free_port()})
    ensure_topics(settings, quiet=True)
    return settings


def _recall(settings, events, worker_factory, n_workers: int) -> tuple[float, float]:
    workers = []
    for n in range(n_workers):
        s = settings.model_copy(update={"web_port": free_port(), "worker_id": f"w{n}",
                                        "datadir": f"{settings.datadir}-{n}"})
        workers.append(worker_factory(s, f"recall{n_workers}-{n}").start())
    if n_workers > 1:
        wait_for(lambda: all(_health(w)["assigned_partitions"] > 0 for w in workers), 60, "every worker owning partitions")
    # a steady rate, as live traffic: micro-batches of the same size for one worker and for two
    signals = _produce(settings, events, rate=1500.0)
    wait_for(lambda: applied(settings) >= len(events), 120, "every event applied")
    wait_for(lambda: learned(settings) >= signals, 30, "every signal learned")
    hits = sum(worker_metric(w.url, "streamrec_prequential_hits_total") for w in workers)
    trials = sum(worker_metric(w.url, "streamrec_prequential_trials_total") for w in workers)
    for w in workers:
        w.stop()
    return hits / trials, trials


def test_one_worker_and_two_workers_reach_the_same_recall(isolated, worker_factory):
    events = _events(15_000, seed=11, users=200, items=300)
    spaces = [_namespace(isolated, uuid.uuid4().hex[:8]) for _ in range(2)]
    try:
        one, n1 = _recall(spaces[0], events, worker_factory, 1)
        two, n2 = _recall(spaces[1], events, worker_factory, 2)
    finally:
        for space in spaces:
            drop_topics(space)
    # within noise: three standard errors of the difference of two binomial proportions
    p = (one * n1 + two * n2) / (n1 + n2)
    noise = 3.0 * math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    print(f"recall@10 one worker {one:.4f} ({n1:.0f} trials), two workers {two:.4f} ({n2:.0f} trials), "
          f"allowed difference {noise:.4f}")
    assert abs(one - two) <= noise
    assert min(one, two) > 0.05  # the model learns: 10 of 120 items at random is 0.083 before exclusions
