"""One contract over the array-level online model, the MF kernel (river's check_estimator, in
spirit). The rankers evaluation runs (the engine, the baselines) have their own contract suite,
found automatically: test_rankers_contract.py."""

import copy
import inspect

import numpy as np
import pytest

from stream.models import OnlineMF

MODELS = [
    pytest.param(lambda: OnlineMF(n_factors=6, n_negatives=3, seed=5), id="OnlineMF"),
    pytest.param(lambda: OnlineMF(n_factors=4, n_negatives=0, passes=2, seed=1), id="OnlineMF-2-passes"),
    pytest.param(lambda: OnlineMF(n_factors=5, n_negatives=8, sampling_alpha=0.0, learning_rate=0.3, seed=2),
                 id="OnlineMF-uniform-negatives"),
]


def _stream(n=300, seed=0):
    rng = np.random.default_rng(seed)
    users = [f"u{x}" for x in rng.integers(0, 15, n)]
    items = [f"i{x}" for x in rng.integers(0, 25, n)]
    weights = rng.choice([1.0, 1.0, 2.0, -1.0, 0.0], n)
    ts = np.sort(rng.uniform(0, 86400, n))
    return users, items, weights, ts


def _feed(model, users, items, weights, ts, batch=16):
    for s in range(0, len(users), batch):
        assert model.learn_many(users[s : s + batch], items[s : s + batch], weights[s : s + batch], ts[s : s + batch]) is None


def _snapshot(model):
    return {u: model.scores(u).tolist() for u in ("u0", "u3", "u7", "nobody")}, {u: model.rank(u, 5) for u in ("u0", "u3")}


@pytest.mark.parametrize("make", MODELS)
def test_constructor_arguments_are_stored_as_passed(make):
    model = make()
    signature = inspect.signature(type(model).__init__)
    assert set(model.get_params()) == set(signature.parameters) - {"self"}
    assert model.clone().get_params() == model.get_params()


@pytest.mark.parametrize("make", MODELS)
def test_same_seed_same_result(make):
    a, b = make(), make()
    data = _stream()
    _feed(a, *data)
    _feed(b, *data)
    assert _snapshot(a) == _snapshot(b)


@pytest.mark.parametrize("make", MODELS)
def test_learning_does_not_mutate_inputs(make):
    users, items, weights, ts = _stream()
    originals = copy.deepcopy((users, items, weights, ts))
    _feed(make(), users, items, weights, ts)
    assert users == originals[0] and items == originals[1]
    np.testing.assert_array_equal(weights, originals[2])
    np.testing.assert_array_equal(ts, originals[3])


@pytest.mark.parametrize("make", MODELS)
def test_learn_one_returns_none_and_matches_learn_many_of_one(make):
    a, b = make(), make()
    assert a.learn_one("u1", "i1", 1.0, 10.0) is None
    b.learn_many(["u1"], ["i1"], [1.0], [10.0])
    assert _snapshot(a) == _snapshot(b)


@pytest.mark.parametrize("make", MODELS)
def test_state_round_trips_through_npz_without_pickle(make, tmp_path):
    users, items, weights, ts = _stream()
    model = make()
    _feed(model, users[:200], items[:200], weights[:200], ts[:200])
    model.save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    restored = type(model).load(tmp_path / "model.npz")
    assert restored.get_params() == model.get_params()
    assert _snapshot(restored) == _snapshot(model)
    # and both continue identically (the random generator's state travels too)
    _feed(model, users[200:], items[200:], weights[200:], ts[200:])
    _feed(restored, users[200:], items[200:], weights[200:], ts[200:])
    assert _snapshot(restored) == _snapshot(model)


@pytest.mark.parametrize("make", MODELS)
def test_rank_leaves_out_seen_items(make):
    model = make()
    _feed(model, *_stream())
    seen = {i for u, i in zip(_stream()[0], _stream()[1]) if u == "u3"}
    ranked = model.rank("u3", k=25)
    assert ranked and not seen & set(ranked)
    assert len(set(ranked)) == len(ranked)


def test_from_state_refuses_another_models_state():
    state = OnlineMF(n_factors=4).state()
    state["__model__"] = np.array("Popularity")
    with pytest.raises(ValueError, match="holds a Popularity, not a OnlineMF"):
        OnlineMF.from_state(state)


def test_from_state_refuses_arrays_of_the_wrong_shape():
    model = OnlineMF(n_factors=4, seed=1)
    model.learn_many(["u"], ["i"])
    state = model.state()
    state["Q"] = np.zeros((1, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"Q must have shape \(1, 4\), got \(1, 3\)"):
        OnlineMF.from_state(state)
