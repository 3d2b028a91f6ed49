"""Random search writes a configuration the model loader accepts."""

import json

import numpy as np
import pytest

from stream.evaluation.datasets import EvalEvent
from stream.evaluation.tune import tune
from stream.models.config_io import FORMAT, build_model, load_model_config
from tests.helpers import unavailable


def _events(n=400):
    rng = np.random.default_rng(1)
    return [EvalEvent(f"u{u}", f"i{(u % 4) * 5 + i}", 1.0, float(t), True)
            for t, (u, i) in enumerate(zip(rng.integers(0, 20, n), rng.integers(0, 5, n)))]


@pytest.mark.parametrize("space", ["mf", "hybrid"])
def test_random_search_writes_a_loadable_best_configuration(space, tmp_path):
    out = tmp_path / "best.json"
    params, value = tune(_events(), space=space, n_trials=3, seed=0, output=str(out), progress=None)
    config = load_model_config(out)
    assert config["format"] == FORMAT and config["params"] == params
    assert config["source"]["value"] == value and config["source"]["trials"] == 3
    assert build_model(config).get_params() == params


def test_same_seed_same_search(tmp_path):
    assert tune(_events(), space="mf", n_trials=3, seed=4, progress=None) == tune(
        _events(), space="mf", n_trials=3, seed=4, progress=None)


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


def test_optuna_sampler_when_installed(tmp_path):
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        unavailable("optuna (the [tune] extra) is not installed")
    params, value = tune(_events(), space="mf", n_trials=3, seed=0, sampler="optuna", progress=None)
    assert build_model({"model": "OnlineMF", "params": params}).n_factors in (32, 64)
    assert 0.0 <= value <= 1.0
