"""The prequential protocol (stream/evaluation/prequential.py): which events are trials, when
rankers learn, what is counted, in which batches."""

import io

import pytest

from producers.simulator import World, WorldConfig
from stream.contract import validate_event
from stream.engine.offline import EngineRanker
from stream.evaluation.baselines import popularity_config
from stream.evaluation.prequential import PerEvent, PrequentialMetrics, fixed_batches, format_table, prequential
from stream.evaluation.run import Oracle
from stream.models.base import Ranker


class Recorder:
    """Ranks a fixed list; records the calls so the test can check the order."""

    def __init__(self, ranking):
        self.ranking = ranking
        self.calls = []

    def rank(self, user_id, k=10):
        self.calls.append(("rank", user_id))
        return self.ranking[:k]

    def learn_one(self, user_id, item_id, weight=1.0, ts=None):
        self.calls.append(("learn", user_id, item_id, weight))


def E(kind, n, user, item, **extra):
    return validate_event(kind, {"event_id": f"e{n}", "user_id": user, "item_id": item, "ts": float(n),
                                 "schema": "v1", **extra})


def _all(n):
    return fixed_batches(n, n)


def test_trials_need_an_earlier_event_of_the_user_and_a_click_on_a_new_item():
    events = [
        E("click", 0, "a", "x"),                         # first event of a: no trial
        E("click", 1, "a", "y"),                         # trial (hit: y is first in the list)
        E("skip", 2, "a", "z", after_seconds=3.0),       # a skip: no trial, but learned
        E("click", 3, "a", "y"),                         # y already seen by a: no trial
        E("dwell", 4, "a", "w", seconds=120.0),          # a positive, but not a click: no trial
        E("impression", 5, "b", "x", items=["x"], rec_id="r"),  # first of b: teaches nothing
        E("click", 6, "b", "q"),                         # trial (miss): b has an earlier event
    ]
    model = Recorder(["y", "x"])
    metrics, catalogue = prequential(events, {"m": PerEvent(model, k=2)}, _all(len(events)), k=2, progress=None)
    m = metrics["m"]
    assert (m.trials, m.hits, catalogue) == (2, 1, 5)
    assert m.recall == 0.5 and m.ndcg == pytest.approx(0.5)
    # test, then train: the rank for an event comes before that event is learned
    assert model.calls[1:3] == [("rank", "a"), ("learn", "a", "y", 1.0)]
    learned = [c[1:] for c in model.calls if c[0] == "learn"]
    assert learned == [("a", "x", 1.0), ("a", "y", 1.0), ("a", "z", -0.5), ("a", "y", 1.0), ("a", "w", 1.0),
                       ("b", "q", 1.0)]  # signal weights; the impression is not learned
    assert m.events == len(events)


class Batches(Ranker):
    """Records the batches it is given."""

    def __init__(self):
        self.seen = []

    def step(self, events):
        self.seen.append([ev.event_id for ev in events])
        return []

    def recommend(self, user_id, k=10):
        return []


def test_every_event_is_given_once_in_order_in_the_given_batches():
    events = [E("click", n, f"u{n % 3}", f"i{n}") for n in range(7)]
    ranker = Batches()
    prequential(events, {"m": ranker}, fixed_batches(len(events), 3), progress=None)
    assert ranker.seen == [["e0", "e1", "e2"], ["e3", "e4", "e5"], ["e6"]]
    assert [list(b) for b in fixed_batches(5, 2)] == [[0, 1], [2, 3], [4]] and fixed_batches(0, 4) == []
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        fixed_batches(5, 0)


def test_the_batch_size_changes_what_was_learned_not_which_events_are_trials():
    world = World(WorldConfig(n_users=40, n_items=30, seed=2))
    events = [validate_event(t, p) for t, p in world.generate(800, start_ts=0.0)]
    counts = {}
    for size in (1, 50, 800):
        metrics, _ = prequential(events, {"pop": EngineRanker(popularity_config())}, fixed_batches(len(events), size),
                                 progress=None)
        counts[size] = metrics["pop"].trials
    assert counts[1] == counts[50] == counts[800] > 50


def test_progress_goes_to_the_given_stream_every_n_events():
    out = io.StringIO()
    events = [E("click", n, "a", str(n)) for n in range(10)]
    prequential(events, {"m": PerEvent(Recorder([]))}, fixed_batches(10, 1), progress_every=4, progress=out)
    assert out.getvalue().count("[prequential]") == 2


def test_metrics_ndcg_coverage_and_table():
    m = PrequentialMetrics(k=3)
    m.record(["a", "b", "c"], "c")
    assert m.ndcg == pytest.approx(0.5)
    assert m.coverage(6) == 0.5
    table = format_table({"m": m}, 6, k=3)
    assert "| m | 1 | 1.0000 | 0.5000 | – | 0.500 |" in table
    m.record_diversity([0.25])
    assert "| m | 1 | 1.0000 | 0.5000 | 0.2500 | 0.500 |" in format_table({"m": m}, 6, k=3)


def test_oracle_ranks_by_true_affinity_without_seen_items():
    class World:
        user_ids, item_ids = ["u"], ["a", "b", "c", "d"]

        def affinity(self, u):
            import numpy as np
            return np.array([0.4, 0.3, 0.2, 0.1])

    oracle = PerEvent(Oracle(World()), k=2)
    trials = oracle.step([E("click", 0, "u", "a"), E("click", 1, "u", "d")])
    assert [(t.item_id, t.ranked) for t in trials] == [("d", ["b", "c"])]
    assert oracle.recommend("u", 2) == ["b", "c"]
