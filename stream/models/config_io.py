"""The model configuration file: written by ``streamrec tune``, read by the engine (worker and ``evaluate``).

Format (JSON, UTF-8)::

    {
      "format": "streamrec-model-config/1",
      "model": "HybridRanker",          # HybridRanker, OnlineMF or SegmentedRanker
      "params": {...},
      "source": {...}                   # free-form provenance: command, dataset, metric, value, time
    }

* ``HybridRanker``: ``params`` are :class:`~stream.models.hybrid.HybridParams` (blend weights and
  the MF, co-occurrence and popularity parts);
* ``OnlineMF``: ``params`` are the MF part alone (the blend is MF only);
* ``SegmentedRanker``: ``params`` hold ``global_model`` (one of the above), ``global_params`` and the
  re-ranker's :class:`~stream.models.rerank.params.RerankParams`; ``source.segmenter`` the profile
  segmenter it was tuned with.

The engine runs the whole file: the blend *and* the re-ranker's settings (:func:`hybrid_params`,
:func:`rerank_params`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pathlib
from typing import Any

from stream.models.hybrid import HybridParams
from stream.models.rerank.params import RerankParams

__all__ = ["FORMAT", "MODEL_KINDS", "load_model_config", "save_model_config", "hybrid_params", "rerank_params",
           "describe"]

FORMAT = "streamrec-model-config/1"
MODEL_KINDS = ("HybridRanker", "OnlineMF", "SegmentedRanker")


def hybrid_params(config: dict[str, Any] | None) -> HybridParams:
    """The blend a configuration names (the defaults without one).

    >>> hybrid_params({"model": "OnlineMF", "params": {"n_factors": 8}}).mf_params["n_factors"]
    8
    >>> hybrid_params(None) == HybridParams()
    True
    """
    if config is None:
        return HybridParams()
    model, params = config["model"], config["params"]
    if model == "SegmentedRanker":
        model, params = params.get("global_model", "HybridRanker"), params.get("global_params") or {}
    if model == "OnlineMF":
        return HybridParams(mf_weight=1.0, cooccurrence_weight=0.0, popularity_weight=0.0, mf=dict(params))
    if model == "HybridRanker":
        return HybridParams.from_dict(params)
    raise ValueError(f"model configuration: unknown model {model!r} (one of {MODEL_KINDS})")


def rerank_params(config: dict[str, Any] | None) -> RerankParams:
    """The re-ranker's parameters: a SegmentedRanker configuration's, else the defaults.

    >>> rerank_params({"model": "SegmentedRanker", "params": {"n_candidates": 50}}).n_candidates
    50
    """
    if config is not None and config["model"] == "SegmentedRanker":
        return RerankParams.from_dict(config["params"])
    return RerankParams()


def describe(config: dict[str, Any] | None) -> dict[str, Any]:
    """What a configuration makes the engine serve, as plain data (for /health and reports)."""
    return {"hybrid": hybrid_params(config).as_dict(), "rerank": rerank_params(config).as_dict()}


def load_model_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a model configuration file; returns ``{"format", "model", "params", "source"}``.

    Raises
    ------
    ValueError
        When the file is not this format, names an unknown model, or its params do not
        build the engine's parts (the message says which file and which rule).
    """
    path = pathlib.Path(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"load_model_config: {path} is not JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"load_model_config: {path} must be a JSON object with \"format\": \"{FORMAT}\"")
    if config.get("model") not in MODEL_KINDS:
        raise ValueError(f"load_model_config: {path}: \"model\" must be one of {MODEL_KINDS}, got {config.get('model')!r}")
    if not isinstance(config.get("params"), dict):
        raise ValueError(f"load_model_config: {path}: \"params\" must be an object")
    try:
        check(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"load_model_config: {path}: params do not make a {config['model']}: {exc}") from exc
    config.setdefault("source", {})
    return config


def check(config: dict[str, Any]) -> None:
    """Raise TypeError/ValueError when a configuration's params do not build the engine's parts."""
    from stream.models.mf import OnlineMF

    hybrid = hybrid_params(config)
    OnlineMF(**hybrid.mf_params)
    rerank_params(config)


def save_model_config(path: str | os.PathLike, model: str, params: dict[str, Any], source: dict[str, Any] | None = None) -> None:
    """Write a configuration file (checked first)."""
    config = {"format": FORMAT, "model": model, "params": params,
              "source": {"written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(), **(source or {})}}
    check(config)
    pathlib.Path(path).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n", encoding="utf-8")
