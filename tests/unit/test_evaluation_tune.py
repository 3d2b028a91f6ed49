"""``streamrec tune``: random (or Optuna) search over the blend, scored by the engine, writes a
configuration the engine loads back as the blend it scored."""

import json

import numpy as np
import pytest

from stream.evaluation.streams import EventStream, load_stream
from stream.evaluation.tune import SEARCH_SPACES, _random_suggest, sample_params, score, tune
from stream.models.config_io import FORMAT, hybrid_params, load_model_config
from stream.models.hybrid import HybridParams
from tests.helpers import unavailable


@pytest.fixture(scope="module")
def sim():
    return load_stream("simulator", sim_events=1500)


def _click(n, user, item):
    return ("click", {"event_id": f"e{n}", "user_id": user, "item_id": item, "ts": float(n), "schema": "v1"})


@pytest.mark.parametrize("space", ["mf", "hybrid"])
def test_the_written_configuration_is_the_blend_that_scored_its_value(space, sim, tmp_path):
    out = tmp_path / "best.json"
    params, value = tune(sim, space=space, n_trials=3, seed=0, output=str(out), progress=None, batch_size=50)
    config = load_model_config(out)
    assert config["format"] == FORMAT and config["model"] == SEARCH_SPACES[space][0]
    assert config["params"] == params
    source = config["source"]
    assert (source["value"], source["trials"], source["prefix_events"], source["batch_size"]) == (value, 3, 1500, 50)
    # loaded back, the file is the blend tune scored: the same figure again
    assert score(sim, hybrid_params(config), batch_size=50) == value


def test_the_mf_space_is_the_mf_part_alone(sim):
    params, _ = tune(sim, space="mf", n_trials=2, seed=1, progress=None)
    assert sorted(params) == sorted(HybridParams().mf)  # an OnlineMF configuration: the MF part's arguments
    blend = hybrid_params({"model": "OnlineMF", "params": params})
    assert (blend.mf_weight, blend.cooccurrence_weight, blend.popularity_weight) == (1.0, 0.0, 0.0)


def test_trial_zero_is_the_defaults(sim):
    params, value = tune(sim, space="hybrid", n_trials=1, progress=None)
    assert params == HybridParams().as_dict()
    assert value == score(sim, HybridParams())


def test_samples_follow_the_space():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = sample_params("hybrid", _random_suggest(rng))
        assert 0.0 <= p.mf_weight <= 0.8 and 10 <= p.cooc.history <= 60 and p.mf["n_negatives"] in (4, 8, 16)
        assert 86400.0 <= p.popularity_half_life <= 60 * 86400.0
        assert p.cooccurrence_weight == 1.0  # not searched: the defaults'
    with pytest.raises(ValueError, match="space must be one of \\['hybrid', 'mf'\\], got 'rerank'"):
        sample_params("rerank", _random_suggest(rng))


def test_same_seed_same_search_other_seed_other_search(sim):
    a = tune(sim, space="mf", n_trials=3, seed=4, progress=None)
    assert a == tune(sim, space="mf", n_trials=3, seed=4, progress=None)
    # trial 0 is shared, so compare what the later trials sampled, not the winner
    first = sample_params("mf", _random_suggest(np.random.default_rng(4)))
    assert first != sample_params("mf", _random_suggest(np.random.default_rng(5)))


def test_a_known_answer_co_occurrence_beats_popularity_on_sequences():
    # every user walks the same chain of items a0 -> a1 -> ... : the next item is the one that
    # followed the last one for everybody else, which co-occurrence knows and popularity does not
    interactions, n = [], 0
    for user in range(12):
        for step in range(8):
            interactions.append(_click(n, f"u{user}", f"a{(step + 3 * user) % 24}"))
            n += 1
    stream = EventStream("chains", interactions=interactions)
    cooc = score(stream, HybridParams(mf_weight=0.0, cooccurrence_weight=1.0, popularity_weight=0.0), k=1, batch_size=1)
    pop = score(stream, HybridParams(mf_weight=0.0, cooccurrence_weight=0.0, popularity_weight=1.0), k=1, batch_size=1)
    assert cooc > pop + 0.3


def test_bad_arguments_say_what_is_wrong(sim):
    with pytest.raises(ValueError, match="sampler must be 'random' or 'optuna', got 'grid'"):
        tune(sim, sampler="grid", progress=None)
    with pytest.raises(ValueError, match="n_trials must be >= 1"):
        tune(sim, n_trials=0, progress=None)


def test_bad_configuration_files_say_what_is_wrong(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"format": FORMAT, "model": "Nope", "params": {}}))
    with pytest.raises(ValueError, match="must be one of"):
        load_model_config(path)
    path.write_text(json.dumps({"format": FORMAT, "model": "OnlineMF", "params": {"n_factors": -1}}))
    with pytest.raises(ValueError, match="n_factors must be > 0"):
        load_model_config(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        load_model_config(path)


def test_optuna_sampler_when_installed(sim):
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        unavailable("optuna (the [tune] extra) is not installed")
    params, value = tune(sim, space="mf", n_trials=3, seed=0, sampler="optuna", progress=None)
    assert params["n_factors"] in (32, 64) and 0.02 <= params["learning_rate"] <= 0.3
    assert value == score(sim, hybrid_params({"model": "OnlineMF", "params": params}))
