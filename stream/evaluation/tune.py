"""``streamrec tune``: random search (or Optuna TPE, if installed) over the prequential protocol.

Each trial is one setting of the blend (:class:`~stream.models.hybrid.HybridParams`): the
engine (:class:`~stream.engine.offline.EngineRanker`) runs the blend alone (no re-ranker, no
behaviour segments, no exploration) over a prefix of the stream in fixed micro-batches, and
scores recall@k. Trial 0 is the defaults, so the search can only improve on them. The best
setting is written in the format of :mod:`stream.models.config_io`, which the worker and
``streamrec evaluate --config`` load.

Spaces: ``hybrid`` (the blend weights and every part's parameters) and ``mf`` (the MF part
alone: the blend is MF only, written as an ``OnlineMF`` configuration).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, TextIO

import numpy as np

from stream.engine.config import EngineConfig
from stream.engine.offline import EngineRanker
from stream.evaluation.prequential import fixed_batches, prequential
from stream.evaluation.streams import EventStream
from stream.models.config_io import save_model_config
from stream.models.hybrid import HybridParams

__all__ = ["SEARCH_SPACES", "sample_params", "score", "tune"]

Suggest = Callable[[str, str, tuple], Any]

# (dotted path into HybridParams.as_dict(), kind, arguments): "float" (low, high), "logfloat"
# (low, high), "int" (low, high) inclusive, "choice" (options,)
_MF_SPACE = [
    ("mf.n_factors", "choice", ([32, 64],)),
    ("mf.learning_rate", "logfloat", (0.02, 0.3)),
    ("mf.l2", "logfloat", (1e-5, 1e-2)),
    ("mf.n_negatives", "choice", ([4, 8, 16],)),
    ("mf.negative_weight", "logfloat", (0.02, 0.5)),
    ("mf.sampling_alpha", "float", (0.0, 0.75)),
]
#: space -> (the model a configuration file names, the defaults (trial 0), the searched dimensions)
SEARCH_SPACES: dict[str, tuple[str, HybridParams, list]] = {
    "mf": ("OnlineMF", HybridParams(mf_weight=1.0, cooccurrence_weight=0.0, popularity_weight=0.0), _MF_SPACE),
    "hybrid": ("HybridRanker", HybridParams(), [
        ("mf_weight", "float", (0.0, 0.8)),
        ("popularity_weight", "float", (0.0, 0.4)),
        ("popularity.half_life", "logfloat", (86400.0, 60 * 86400.0)),
        ("cooccurrence.decay", "float", (0.5, 0.95)),
        ("cooccurrence.history", "int", (10, 60)),
        ("cooccurrence.window", "int", (10, 60)),
        ("cooccurrence.alpha", "float", (0.4, 0.8)),
    ] + _MF_SPACE),
}


def _space(space: str) -> tuple[str, HybridParams, list]:
    try:
        return SEARCH_SPACES[space]
    except KeyError:
        raise ValueError(f"tune: space must be one of {sorted(SEARCH_SPACES)}, got {space!r}") from None


def _set(params: dict, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        params = params.setdefault(key, {})
    params[last] = value


def sample_params(space: str, suggest: Suggest) -> HybridParams:
    """The defaults of ``space`` with every searched value from ``suggest(name, kind, args)``.

    Examples
    --------
    >>> params = sample_params("mf", _random_suggest(np.random.default_rng(0)))
    >>> params.mf_weight, params.cooccurrence_weight, params.mf["n_factors"] in (32, 64)
    (1.0, 0.0, True)
    >>> sample_params("hybrid", lambda name, kind, args: args[0][0] if kind == "choice" else args[0]).cooc.history
    10
    """
    _, defaults, dims = _space(space)
    params = defaults.as_dict()  # a deep enough copy: every part is a fresh dict
    for name, kind, args in dims:
        _set(params, name, suggest(name, kind, args))
    return HybridParams.from_dict(params)


def _random_suggest(rng: np.random.Generator) -> Suggest:
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


def _optuna_suggest(trial) -> Suggest:
    def suggest(name: str, kind: str, args: tuple) -> Any:
        if kind == "float":
            return trial.suggest_float(name, *args)
        if kind == "logfloat":
            return trial.suggest_float(name, *args, log=True)
        if kind == "int":
            return trial.suggest_int(name, *args)
        return trial.suggest_categorical(name, args[0])

    return suggest


def score(stream: EventStream, hybrid: HybridParams, k: int = 10, batch_size: int = 100) -> float:
    """recall@k of the blend alone over ``stream`` (profiles and catalogue applied first), in
    fixed micro-batches of ``batch_size``.

    Examples
    --------
    >>> clicks = [("click", {"event_id": f"e{n}", "user_id": f"u{n % 5}", "item_id": f"i{n % 3}",
    ...                      "ts": float(n), "schema": "v1"}) for n in range(30)]
    >>> score(EventStream("tiny", interactions=clicks), HybridParams(), k=3, batch_size=1)  # 3 items: every trial a hit
    1.0
    """
    ranker = EngineRanker(EngineConfig(hybrid=hybrid, rerank=None, behaviour=None, explore_share=0.0, top_k=k))
    try:
        ranker.prepare(stream)
        events = stream.events()
        metrics, _ = prequential(events, {"m": ranker}, fixed_batches(len(events), batch_size), k=k, progress=None)
    finally:
        ranker.close()
    return metrics["m"].recall


def _written(space: str, params: HybridParams) -> dict[str, Any]:
    """What the configuration file holds: the blend, or for the ``mf`` space its MF part."""
    return dict(params.mf) if SEARCH_SPACES[space][0] == "OnlineMF" else params.as_dict()


def tune(
    stream: EventStream,
    space: str = "hybrid",
    n_trials: int = 20,
    k: int = 10,
    seed: int = 0,
    sampler: str = "random",
    output: str | None = None,
    source: dict[str, Any] | None = None,
    progress: TextIO | None = sys.stderr,
    batch_size: int = 100,
) -> tuple[dict[str, Any], float]:
    """Search ``space`` over ``stream`` (the prefix to tune on, whole); returns (the best
    configuration's params, its recall@k) and writes ``output`` if given.

    The params are those the file holds: a ``HybridRanker``'s (:meth:`HybridParams.as_dict`),
    or for the ``mf`` space an ``OnlineMF``'s (the MF part). ``source`` is added to the file's
    provenance.

    Examples
    --------
    >>> clicks = [("click", {"event_id": f"e{n}", "user_id": f"u{n % 5}", "item_id": f"i{n % 7}",
    ...                      "ts": float(n), "schema": "v1"}) for n in range(60)]
    >>> params, value = tune(EventStream("tiny", interactions=clicks), space="mf", n_trials=2, k=3, progress=None)
    >>> sorted(params) == sorted(HybridParams().mf), 0.0 <= value <= 1.0
    (True, True)
    """
    model_name, defaults, _ = _space(space)
    if sampler not in ("random", "optuna"):
        raise ValueError(f"tune: sampler must be 'random' or 'optuna', got {sampler!r}")
    if n_trials < 1:
        raise ValueError(f"tune: n_trials must be >= 1 (trial 0 is the defaults), got {n_trials}")
    results: list[tuple[float, HybridParams]] = []
    started = time.perf_counter()

    def run(params: HybridParams) -> float:
        value = score(stream, params, k=k, batch_size=batch_size)
        results.append((value, params))
        if progress is not None:
            best = max(r[0] for r in results)
            print(f"[tune] trial {len(results)}/{n_trials}: recall@{k}={value:.4f} (best {best:.4f}), "
                  f"{time.perf_counter() - started:.0f}s", file=progress, flush=True)
        return value

    run(defaults)
    if sampler == "optuna":
        try:
            import optuna
        except ImportError as exc:
            raise RuntimeError("tune: --sampler optuna needs the [tune] extra (pip install optuna)") from exc
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(lambda trial: run(sample_params(space, _optuna_suggest(trial))), n_trials=n_trials - 1)
    else:
        suggest = _random_suggest(np.random.default_rng(seed))
        for _ in range(n_trials - 1):
            run(sample_params(space, suggest))
    # the first of equal values: the defaults win ties
    best_value, best = max(results, key=lambda r: r[0])
    params = _written(space, best)
    if output is not None:
        save_model_config(output, model_name, params, {
            **(source or {}), "metric": f"recall@{k}", "value": best_value, "trials": len(results),
            "sampler": sampler, "seed": seed, "prefix_events": len(stream.events()), "batch_size": batch_size,
        })
    return params, best_value
