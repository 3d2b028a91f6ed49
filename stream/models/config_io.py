"""The model configuration file: written by ``streamrec tune``, read by the worker and ``evaluate``.

Format (JSON, UTF-8)::

    {
      "format": "streamrec-model-config/1",
      "model": "HybridRanker",          # a class of stream.models: OnlineMF, HybridRanker, SegmentedRanker, ...
      "params": {...},                  # its constructor arguments, exactly
      "source": {...}                   # free-form provenance: command, dataset, metric, value, time
    }
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pathlib
from typing import Any

__all__ = ["FORMAT", "MODEL_CLASSES", "load_model_config", "save_model_config", "build_model"]

FORMAT = "streamrec-model-config/1"


def _classes() -> dict[str, type]:
    from stream.models.cooccurrence import Cooccurrence
    from stream.models.hybrid import HybridRanker
    from stream.models.mf import OnlineMF
    from stream.models.popularity import Popularity
    from stream.models.rerank import SegmentedRanker

    return {cls.__name__: cls for cls in (OnlineMF, HybridRanker, Cooccurrence, Popularity, SegmentedRanker)}


MODEL_CLASSES = ("OnlineMF", "HybridRanker", "Cooccurrence", "Popularity", "SegmentedRanker")


def load_model_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a model configuration file; returns ``{"format", "model", "params", "source"}``.

    Raises
    ------
    ValueError
        When the file is not this format, names an unknown model, or its params do not
        build that model (the message says which file and which rule).
    """
    path = pathlib.Path(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"load_model_config: {path} is not JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"load_model_config: {path} must be a JSON object with \"format\": \"{FORMAT}\"")
    if config.get("model") not in MODEL_CLASSES:
        raise ValueError(f"load_model_config: {path}: \"model\" must be one of {MODEL_CLASSES}, got {config.get('model')!r}")
    if not isinstance(config.get("params"), dict):
        raise ValueError(f"load_model_config: {path}: \"params\" must be an object of constructor arguments")
    try:
        build_model(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"load_model_config: {path}: params do not build a {config['model']}: {exc}") from exc
    config.setdefault("source", {})
    return config


def build_model(config: dict[str, Any]):
    """A fresh model from a configuration dict (as returned by ``load_model_config``).

    Examples
    --------
    >>> build_model({"model": "OnlineMF", "params": {"n_factors": 16}}).n_factors
    16
    """
    return _classes()[config["model"]](**config["params"])


def save_model_config(path: str | os.PathLike, model: str, params: dict[str, Any], source: dict[str, Any] | None = None) -> None:
    """Write a configuration file (checked by building the model first)."""
    config = {"format": FORMAT, "model": model, "params": params,
              "source": {"written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(), **(source or {})}}
    build_model(config)
    pathlib.Path(path).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n", encoding="utf-8")
