"""SegmentedRanker: transfer (untrained = global ranking), the guard, a known answer, state without pickle."""

import copy
import inspect
import logging

import numpy as np
import pytest

from stream.models import HybridRanker, SegmentedRanker, load_model_config, save_model_config
from stream.models.guard import SegmentGuard

HYBRID = {"mf_weight": 0.3, "popularity_weight": 0.2, "mf": {"n_factors": 8, "seed": 3},
          "cooccurrence": {"decay": 0.7, "history": 10, "window": 10}}


def _stream(n=600, n_users=30, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    users = [f"u{x}" for x in rng.integers(0, n_users, n)]
    items = [f"i{x}" for x in rng.integers(0, n_items, n)]
    weights = rng.choice([1.0, 1.0, 2.0, -1.0, 0.0], n)
    return users, items, weights, np.arange(n, dtype=np.float64)


def _ranker(**kwargs):
    ranker = SegmentedRanker("HybridRanker", HYBRID, n_candidates=20, **kwargs)
    for u in range(30):
        ranker.set_segment(f"u{u}", "odd" if u % 2 else "even")
    return ranker


def _run(ranker, users, items, weights, ts):
    """Prequential: a trial before each new positive, then learn (as the evaluation does)."""
    seen = {}
    for u, i, w, t in zip(users, items, weights, ts):
        if w > 0 and u in seen and i not in seen[u]:
            ranker.trial(u, i, 10)
        ranker.learn_one(u, i, float(w), float(t))
        seen.setdefault(u, set()).add(i)


def test_constructor_arguments_are_stored_as_passed_and_checked():
    ranker = _ranker(learning_rate=0.05, segment_params={"odd": {"n_candidates": 30}})
    signature = inspect.signature(SegmentedRanker.__init__)
    assert set(ranker.get_params()) == set(signature.parameters) - {"self"}
    assert ranker.clone().get_params() == ranker.get_params()
    with pytest.raises(ValueError, match="may override only"):
        SegmentedRanker(segment_params={"odd": {"n_factors": 3}})
    with pytest.raises(ValueError, match="global_model must be"):
        SegmentedRanker("Popularity")


def test_an_untrained_reranker_ranks_exactly_like_the_global_model():
    users, items, weights, ts = _stream()
    ranker = _ranker()
    glob = HybridRanker(**HYBRID)
    for u, i, w, t in zip(users, items, weights, ts):
        glob.learn_one(u, i, float(w), float(t))
    # a trained global model, an untrained re-ranker (learning through the ranker would train it)
    ranker.global_._load_arrays(glob._state_arrays())
    for u in sorted(set(users)) + ["nobody"]:
        assert ranker.rank(u, 20) == glob.rank(u, 20)
        t = ranker.trial(u, "i0", 10)
        assert t.served == t.segment_model == t.shared == t.global_ == glob.rank(u, 10)


def test_ties_keep_the_global_order():
    # popularity only: many items tie; the untrained re-ranker must keep the global tie order
    ranker = SegmentedRanker("HybridRanker", {"mf_weight": 0.0, "cooccurrence_weight": 0.0,
                                              "popularity_weight": 1.0}, n_candidates=50)
    ranker.learn_many([f"u{n}" for n in range(40)], [f"i{n % 13}" for n in range(40)], np.zeros(40))
    ranker.learn_many(["a", "b"], ["i5", "i9"], [1.0, 1.0])
    assert ranker.rank("c", 13) == ranker.global_.rank("c", 13)


def test_a_new_segment_starts_from_the_shared_layer_and_without_it_from_the_global_ranking():
    users, items, weights, ts = _stream()
    for shared in (True, False):
        ranker = _ranker(shared=shared, learning_rate=0.1)
        _run(ranker, users, items, weights, ts)
        for u in ("u3", "u4", "u7"):
            ranker.set_segment(u, "brand-new")
            t = ranker.trial(u, "i0", 10)
            assert t.segment == "brand-new"
            assert t.segment_model == (t.shared if shared else t.global_)
        assert ranker.get_params()["shared"] is shared
    # and learning did move the trained segments away from the global ranking somewhere
    assert any(ranker.trial(f"u{u}", "i0", 10).segment_model != ranker.trial(f"u{u}", "i0", 10).global_
               for u in range(30))


def test_guard_switches_to_global_when_worse_and_back_when_it_recovers(caplog):
    guard = SegmentGuard("teens", window=50, margin=0.05, min_trials=20, z=0.0)
    with caplog.at_level(logging.INFO, logger="stream.models.guard"):
        switched = [guard.update(0, 1) for _ in range(20)]  # the segment model misses, global hits
    assert switched.index(True) == 19 and not guard.serving_segment
    assert guard.switches[-1]["to"] == "global" and "now serves the global ranking" in caplog.text
    while not guard.serving_segment:
        guard.update(1, 0)
    assert [s["to"] for s in guard.switches] == ["global", "segment"]
    assert guard.mean_difference >= 0.0


def test_guard_waits_for_evidence_beyond_noise():
    rng = np.random.default_rng(0)
    guard = SegmentGuard("noisy", window=500, margin=0.0, min_trials=100, z=2.0)
    for _ in range(5000):  # equally good models, independent hits: no switch
        guard.update(rng.random() < 0.2, rng.random() < 0.2)
    assert guard.switches == []
    for _ in range(500):  # the segment model now hits half as often
        guard.update(rng.random() < 0.1, rng.random() < 0.2)
    assert [s["to"] for s in guard.switches] == ["global"]


def test_a_bad_segment_layer_is_guarded_and_served_the_global_ranking():
    users, items, weights, ts = _stream()
    ranker = _ranker(guard_window=40, guard_min_trials=20, guard_margin=0.0, guard_z=0.0)
    _run(ranker, users, items, weights, ts)
    # sabotage the "odd" layer: it now ranks the global order upside down
    layer = ranker.layers.layer("odd")
    layer._weights["base"] = -5.0
    even = ranker.guards["even"].to_dict()
    rng = np.random.default_rng(1)
    for _ in range(200):
        u = f"u{2 * int(rng.integers(15)) + 1}"
        target = ranker.global_.rank(u, 10)[int(rng.integers(3))]  # an item the global model ranks high
        ranker.trial(u, target, 10)
    guard = ranker.guards["odd"]
    assert not guard.serving_segment and guard.switches[-1]["to"] == "global"
    assert ranker.rank("u1", 10) == ranker.global_.rank("u1", 10)
    assert ranker.guards["even"].to_dict() == even  # another segment's guard is not involved
    layer._weights["base"] = 1.0  # repaired: it recovers
    for _ in range(200):
        u = f"u{2 * int(rng.integers(15)) + 1}"
        ranker.trial(u, ranker.global_.rank(u, 10)[0], 10)
    assert guard.serving_segment and guard.switches[-1]["to"] == "segment"
    assert any(s["segment"] == "odd" for s in ranker.switches())


def test_a_segment_with_a_distinct_taste_gains_from_its_reranker():
    """Known answer: 80 % of users like items a0..a19, a minority segment likes b0..b19.
    The global popularity ranking serves everyone the majority's items; segment popularity
    lets the minority's re-ranker lift its own items."""
    rng = np.random.default_rng(7)
    ranker = SegmentedRanker("HybridRanker", {"mf_weight": 0.0, "cooccurrence_weight": 0.0, "popularity_weight": 1.0},
                             n_candidates=40, learning_rate=0.1, seed=1)
    majority = [f"m{u}" for u in range(80)]
    minority = [f"n{u}" for u in range(20)]
    for u in majority:
        ranker.set_segment(u, "majority")
    for u in minority:
        ranker.set_segment(u, "minority")
    hits = {"majority": [0, 0], "minority": [0, 0]}  # [served, global]
    seen = {}
    for t in range(6000):
        u = majority[int(rng.integers(80))] if rng.random() < 0.8 else minority[int(rng.integers(20))]
        prefix = "a" if u.startswith("m") else "b"
        item = f"{prefix}{min(int(rng.zipf(1.5)) - 1, 19)}"
        if u in seen and item not in seen[u]:
            trial = ranker.trial(u, item, 5)
            if t > 2000:  # after a warm-up
                segment = trial.segment
                hits[segment][0] += item in trial.served
                hits[segment][1] += item in trial.global_
        ranker.learn_one(u, item, 1.0, float(t))
        seen.setdefault(u, set()).add(item)
    served, glob = hits["minority"]
    assert served > 1.5 * glob + 10, hits
    assert hits["majority"][0] >= hits["majority"][1] - 5, hits


def test_state_round_trips_without_pickle_and_continues_identically(tmp_path):
    users, items, weights, ts = _stream()
    ranker = _ranker(learning_rate=0.1)
    _run(ranker, users[:400], items[:400], weights[:400], ts[:400])
    ranker.save(tmp_path / "ranker.npz")
    with np.load(tmp_path / "ranker.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    restored = SegmentedRanker.load(tmp_path / "ranker.npz")
    assert restored.get_params() == ranker.get_params()
    for u in ("u1", "u2", "u29", "nobody"):
        assert restored.rank(u, 10) == ranker.rank(u, 10)
    _run(ranker, users[400:], items[400:], weights[400:], ts[400:])
    _run(restored, users[400:], items[400:], weights[400:], ts[400:])
    for u in ("u1", "u2", "u29"):
        assert restored.trial(u, "i1", 10) == ranker.trial(u, "i1", 10)
    assert restored.switches() == ranker.switches()


def test_same_seed_same_result_and_inputs_untouched():
    users, items, weights, ts = _stream()
    originals = copy.deepcopy((users, items, weights))
    a, b = _ranker(), _ranker()
    _run(a, users, items, weights, ts)
    _run(b, users, items, weights, ts)
    assert [a.rank(f"u{u}", 10) for u in range(30)] == [b.rank(f"u{u}", 10) for u in range(30)]
    assert users == originals[0] and items == originals[1]
    np.testing.assert_array_equal(weights, originals[2])
    assert a.learn_one("u1", "i1", 1.0, 1e9) is None
    assert a.learn_many(["u1"], ["i2"]) is None


def test_segments_past_the_cap_go_to_the_default_segment():
    ranker = SegmentedRanker(max_segments=2)
    assert ranker.set_segment("a", "s1") == "s1"
    assert ranker.set_segment("b", "s2") == "s2"
    assert ranker.set_segment("c", "s3") == "all"
    assert ranker.segment_of("c") == "all" and ranker.segment_of("unknown") == "all"


def test_a_segmented_configuration_file_loads_and_builds(tmp_path):
    path = tmp_path / "segmented.json"
    params = _ranker(segment_params={"odd": {"learning_rate": 0.05, "guard_margin": 0.02}}).get_params()
    save_model_config(path, "SegmentedRanker", params, {"dataset": "test"})
    config = load_model_config(path)
    assert config["model"] == "SegmentedRanker" and config["params"] == params
    bad = dict(params, segment_params={"odd": {"nope": 1}})
    with pytest.raises(ValueError, match="may override only"):
        save_model_config(tmp_path / "bad.json", "SegmentedRanker", bad)
