"""The segment models in real workers: River re-rankers per segment learning from live
events, with their state in Redis, and guards that fall back to the blend's ranking (switches
visible in metrics and logs, kept across a restart). The guard's rule is SegmentGuard's, the one
implementation (tests/unit/test_rerank.py); Redis only keeps its state."""

from __future__ import annotations

import json
import urllib.request

import pytest
import redis

from producers.sdk import EventProducer
from producers.simulator import World, WorldConfig
from stream.engine.config import MODEL_NAMES
from stream.models.config_io import save_model_config
from stream.models.rerank.layers import SHARED_LAYER
from stream.state.keys import Keys
from tests.helpers import applied, wait_for

pytestmark = pytest.mark.integration


def _metric_lines(worker, name: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(name + "{")}


def _recommend(worker, user: str) -> dict:
    with urllib.request.urlopen(f"{worker.url}/recommendations/{user}?k=10", timeout=5) as resp:
        return json.loads(resp.read())


def test_workers_learn_segment_rerankers_and_guard_them(isolated, worker_factory, tmp_path):
    world = World(WorldConfig(n_users=150, n_items=60, n_segments=3, seed=21))
    bad = f"segment:{world.segment_names[0]}"  # its re-ranker starts reversed and does not learn
    config = tmp_path / "segmented.json"
    save_model_config(config, "SegmentedRanker", {
        "global_model": "OnlineMF", "global_params": {"n_factors": 16}, "n_candidates": 40,
        # a hair-trigger guard for the bad segment only; the others keep the defaults (no chance switches)
        "segment_params": {bad: {"learning_rate": 0.0, "guard_window": 40, "guard_min_trials": 10,
                                 "guard_margin": 0.0, "guard_z": 0.0}},
    })
    settings = isolated.model_copy(update={"model_config_path": str(config), "segment_attributes": "segment"})
    keys = Keys(settings.redis_prefix)
    store = redis.Redis.from_url(settings.redis_url)
    # the state is in Redis: a planted change of weights makes the bad segment's layer rank in
    # reverse (the stored changes are added to the transfer start, 1 on the shared logit)
    # (against MF and against the segment's popularity: worse than MF even while MF is young)
    store.hset(keys.rerank(bad), mapping={"base": -41.0, "global": -20.0, "seg_pop": -20.0})
    worker = worker_factory(settings).start()
    events = list(world.generate(5000, start_ts=1_700_000_000.0, step_seconds=0.05))
    with EventProducer(settings) as producer:
        for profile in world.profiles():
            producer.send("user", profile)
        producer.flush()
        wait_for(lambda: all(store.hget(keys.profile(p["user_id"]), "_segment") for p in world.profiles()), 60,
                 "every profile applied")
        for etype, payload in events:
            producer.send(etype, payload)
    wait_for(lambda: applied(settings) >= len(events), 120, "every event applied")
    # a young MF model can lose to the reversed layer's luck for a while: give the guard up to
    # two more rounds of evidence before judging it (every assertion below covers all events)
    for round_ in range(2):
        if store.hget(keys.guard(bad), "serving") == b"global":
            break
        more = list(world.generate(2500, start_ts=1_700_000_000.0 + 300.0 * (round_ + 1), step_seconds=0.05,
                                   run_id=f"more{round_}"))
        with EventProducer(settings) as producer:
            for etype, payload in more:
                producer.send(etype, payload)
        events += more
        wait_for(lambda: applied(settings) >= len(events), 120, "every event applied")

    # the bad segment's guard fell back to the blend's ranking: a metric, a log line, Redis
    switched = f'streamrec_segment_guard_switches_total{{segment="{bad}",to="global"}}'
    if store.hget(keys.guard(bad), "serving") == b"global":  # a batch's metrics follow its apply call
        wait_for(lambda: _metric_lines(worker, "streamrec_segment_guard_switches_total")[switched] >= 1, 10,
                 "the switch in the worker's metrics", interval=0.5)
    switches = _metric_lines(worker, "streamrec_segment_guard_switches_total")
    assert switches[switched] >= 1, (  # a string, so pytest shows all of it
        f"events {len(events)}, hits {_metric_lines(worker, 'streamrec_prequential_ranking_hits_total')}, "
        f"trials {_metric_lines(worker, 'streamrec_prequential_trials_total')}, "
        f"hit difference {_metric_lines(worker, 'streamrec_segment_hit_difference')}, "
        f"guard {({k: v for k, v in store.hgetall(keys.guard(bad)).items() if k != b'ring'})}, "
        f"layer {store.hgetall(keys.rerank(bad))}")
    assert f"segment guard: segment '{bad}' now serves the global ranking" in worker.log_path.read_text()
    assert store.hget(keys.guard(bad), "serving") == b"global"
    serving = _metric_lines(worker, "streamrec_segment_serving")
    assert serving[f'streamrec_segment_serving{{segment="{bad}"}}'] == 0.0
    good = [f"segment:{name}" for name in world.segment_names[1:]]
    assert all(serving[f'streamrec_segment_serving{{segment="{s}"}}'] == 1.0 for s in good)

    # the other segments' layers and the shared one learned: their weights moved in Redis
    examples = _metric_lines(worker, "streamrec_rerank_examples_total")
    assert all(examples[f'streamrec_rerank_examples_total{{segment="{s}"}}'] > 0 for s in [bad, *good])
    for layer in [SHARED_LAYER, *good]:
        assert store.hgetall(keys.rerank(layer)), f"no learned weights for layer {layer}"
    assert {k: float(v) for k, v in store.hgetall(keys.rerank(bad)).items()} == {b"base": -41.0, b"global": -20.0,
                                                                                 b"seg_pop": -20.0}

    # both rankings are scored on the same trials; the served lists name their model. The
    # reversed layer's loss is what its guard judged (the switch, above); over the whole run each
    # ranking has a handful of hits (2-17 here), and they once tied (8 and 8, CI, 2026-12-07):
    # so the reversed layer is asked not to have more, not to have fewer
    hits = _metric_lines(worker, "streamrec_prequential_ranking_hits_total")
    global_hits = hits[f'streamrec_prequential_ranking_hits_total{{ranking="global",segment="{bad}"}}']
    assert global_hits > 0 and global_hits >= \
        hits[f'streamrec_prequential_ranking_hits_total{{ranking="segment",segment="{bad}"}}']
    clickers = {p["user_id"] for t, p in events if t == "click"}
    user_in = {s: next(p["user_id"] for p in world.profiles()
                       if f"segment:{p['attributes']['segment']}" == s and p["user_id"] in clickers)
               for s in [bad, *good]}
    assert _recommend(worker, user_in[bad])["model"] == MODEL_NAMES["hybrid"]
    assert _recommend(worker, user_in[good[0]])["model"] == MODEL_NAMES["rerank"]

    # the state is in Redis, not in the worker: a new worker serves the bad segment the blend's ranking too
    worker.stop()
    again = worker_factory(settings, "again").start()
    assert _recommend(again, user_in[bad])["model"] == MODEL_NAMES["hybrid"]
    assert _recommend(again, user_in[good[0]])["model"] == MODEL_NAMES["rerank"]
