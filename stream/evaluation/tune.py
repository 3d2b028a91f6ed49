"""``streamrec tune``: random search (or Optuna TPE, if installed) over the prequential protocol.

Each trial builds a model from a sampled configuration, runs the protocol on a prefix
of the stream, and scores recall@k. The best configuration is written in the format
of :mod:`stream.models.config_io`, which the worker and ``streamrec evaluate --config`` load.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from typing import Any, Callable, TextIO

import numpy as np

from stream.evaluation.prequential import prequential
from stream.evaluation.run import DEFAULT_HYBRID, DEFAULT_MF
from stream.models.config_io import build_model, save_model_config

__all__ = ["SEARCH_SPACES", "sample_params", "tune"]

# (dotted parameter path, kind, arguments): "float" (low, high), "logfloat" (low, high),
# "int" (low, high) inclusive, "choice" (options,)
_MF_SPACE = [
    ("n_factors", "choice", ([32, 64],)),
    ("learning_rate", "logfloat", (0.02, 0.3)),
    ("l2", "logfloat", (1e-5, 1e-2)),
    ("n_negatives", "choice", ([4, 8, 16],)),
    ("negative_weight", "logfloat", (0.02, 0.5)),
    ("sampling_alpha", "float", (0.0, 0.75)),
]
SEARCH_SPACES: dict[str, tuple[str, dict[str, Any], list]] = {
    "mf": ("OnlineMF", DEFAULT_MF, _MF_SPACE),
    "hybrid": ("HybridRanker", DEFAULT_HYBRID, [
        ("mf_weight", "float", (0.0, 0.8)),
        ("popularity_weight", "float", (0.0, 0.4)),
        ("popularity.half_life", "logfloat", (86400.0, 60 * 86400.0)),
        ("cooccurrence.decay", "float", (0.5, 0.95)),
        ("cooccurrence.history", "int", (10, 60)),
        ("cooccurrence.window", "int", (10, 60)),
        ("cooccurrence.alpha", "float", (0.4, 0.8)),
    ] + [(f"mf.{name}", kind, args) for name, kind, args in _MF_SPACE]),
}


def _set(params: dict, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        params = params.setdefault(key, {})
    params[last] = value


def sample_params(space: str, suggest: Callable[[str, str, tuple], Any]) -> dict[str, Any]:
    """A full parameter dict: the defaults of ``space`` with every searched value from ``suggest``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> params = sample_params("mf", _random_suggest(rng))
    >>> sorted(params) == sorted(DEFAULT_MF)
    True
    """
    _, defaults, dims = SEARCH_SPACES[space]
    params = copy.deepcopy(defaults)
    for name, kind, args in dims:
        _set(params, name, suggest(name, kind, args))
    return params


def _random_suggest(rng: np.random.Generator) -> Callable[[str, str, tuple], Any]:
    def suggest(name: str, kind: str, args: tuple) -> Any:
        if kind == "float":
            return float(rng.uniform(*args))
        if kind == "logfloat":
            return float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
        if kind == "int":
            return int(rng.integers(args[0], args[1] + 1))
        options = args[0]
        return options[int(rng.integers(len(options)))]

    return suggest


def _optuna_suggest(trial) -> Callable[[str, str, tuple], Any]:
    def suggest(name: str, kind: str, args: tuple) -> Any:
        if kind == "float":
            return trial.suggest_float(name, *args)
        if kind == "logfloat":
            return trial.suggest_float(name, *args, log=True)
        if kind == "int":
            return trial.suggest_int(name, *args)
        return trial.suggest_categorical(name, args[0])

    return suggest


def tune(
    events: list,
    space: str = "hybrid",
    n_trials: int = 20,
    k: int = 10,
    seed: int = 0,
    sampler: str = "random",
    output: str | None = None,
    source: dict[str, Any] | None = None,
    progress: TextIO | None = sys.stderr,
) -> tuple[dict[str, Any], float]:
    """Search ``space``; returns (best params, best recall@k) and writes ``output`` if given."""
    model_name = SEARCH_SPACES[space][0]

    def score(params: dict[str, Any]) -> float:
        model = build_model({"model": model_name, "params": params})
        metrics, _ = prequential(events, {"m": model}, k=k, progress=None)
        return metrics["m"].recall

    results: list[tuple[float, dict[str, Any]]] = []

    def record(n: int, params: dict[str, Any], value: float, started: float) -> None:
        results.append((value, params))
        best = max(r[0] for r in results)
        if progress is not None:
            print(f"[tune] trial {n + 1}/{n_trials}: recall@{k}={value:.4f} (best {best:.4f}), "
                  f"{time.perf_counter() - started:.0f}s", file=progress, flush=True)

    # trial 0 is always the defaults, so the search can only improve on them
    t0 = time.perf_counter()
    record(0, copy.deepcopy(SEARCH_SPACES[space][1]), score(copy.deepcopy(SEARCH_SPACES[space][1])), t0)
    if sampler == "optuna":
        try:
            import optuna
        except ImportError as exc:
            raise RuntimeError("tune: --sampler optuna needs the [tune] extra (pip install optuna)") from exc
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

        def objective(trial) -> float:
            params = sample_params(space, _optuna_suggest(trial))
            value = score(params)
            record(trial.number + 1, params, value, t0)
            return value

        study.optimize(objective, n_trials=max(n_trials - 1, 0))
    elif sampler == "random":
        suggest = _random_suggest(np.random.default_rng(seed))
        for n in range(1, n_trials):
            params = sample_params(space, suggest)
            record(n, params, score(params), t0)
    else:
        raise ValueError(f"tune: sampler must be 'random' or 'optuna', got {sampler!r}")
    best_value, best_params = max(results, key=lambda r: r[0])
    if output is not None:
        save_model_config(output, model_name, best_params, {
            **(source or {}), "metric": f"recall@{k}", "value": best_value, "trials": len(results),
            "sampler": sampler, "seed": seed, "prefix_events": len(events),
        })
    return best_params, best_value
