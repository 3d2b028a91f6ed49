"""The prequential protocol: which events are trials, when models learn, what is counted."""

import io

import pytest

from stream.evaluation.datasets import EvalEvent
from stream.evaluation.prequential import PrequentialMetrics, format_table, prequential
from stream.evaluation.run import Oracle


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


def E(u, i, w=1.0, ts=0.0):
    return EvalEvent(u, i, w, ts, w > 0)


def test_trials_need_an_earlier_event_of_the_user_and_a_new_positive_item():
    events = [
        E("a", "x"),         # first event of a: no trial
        E("a", "y"),         # trial (hit: y is first in the list)
        E("a", "z", -1.0),   # negative: no trial, but learned
        E("a", "y"),         # y already seen by a: no trial
        E("b", "x", 0.0),    # neutral, first of b
        E("b", "q"),         # trial (miss)
    ]
    model = Recorder(["y", "x"])
    metrics, catalogue = prequential(events, {"m": model}, k=2, progress=None)
    m = metrics["m"]
    assert (m.trials, m.hits, catalogue) == (2, 1, 4)
    assert m.recall == 0.5 and m.ndcg == pytest.approx(0.5)
    # test, then train: the rank for an event comes before that event is learned
    assert model.calls[1:3] == [("rank", "a"), ("learn", "a", "y", 1.0)]
    assert sum(c[0] == "learn" for c in model.calls) == len(events)


def test_progress_goes_to_the_given_stream_every_n_events():
    out = io.StringIO()
    prequential([E("a", str(n)) for n in range(10)], {"m": Recorder([])}, progress_every=4, progress=out)
    assert out.getvalue().count("[prequential]") == 2


def test_metrics_ndcg_coverage_and_table():
    m = PrequentialMetrics(k=3)
    m.record(["a", "b", "c"], "c")
    assert m.ndcg == pytest.approx(0.5)
    assert m.coverage(6) == 0.5
    table = format_table({"m": m}, 6, k=3)
    assert "| m | 1 | 1.0000 | 0.5000 | 0.500 |" in table


def test_oracle_ranks_by_true_affinity_without_seen_items():
    class World:
        user_ids, item_ids = ["u"], ["a", "b", "c", "d"]

        def affinity(self, u):
            import numpy as np
            return np.array([0.4, 0.3, 0.2, 0.1])

    oracle = Oracle(World())
    oracle.learn_one("u", "a")
    assert oracle.rank("u", 2) == ["b", "c"]


def test_micro_batched_models_leave_out_items_seen_since_the_last_batch():
    from stream.evaluation.prequential import MicroBatched
    from stream.models import OnlineMF

    model = MicroBatched(OnlineMF(n_factors=4, seed=0), batch_size=8)
    for n in range(5):
        model.learn_one("a", f"i{n}", 1.0, float(n))
    model.learn_one("b", "i9", 1.0, 5.0)
    assert model.model.item_ids == ["i0", "i1", "i2", "i3", "i4", "i9"]
    assert model.rank("a", 10) == ["i9"]
    assert not model.model._aQ.any()  # nothing learned before the batch is full
    model.learn_one("b", "i8", 1.0, 6.0)
    model.learn_one("b", "i7", 1.0, 7.0)
    assert model.model._aQ.any()
