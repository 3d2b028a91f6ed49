"""River logistic regression as a re-ranking layer: transfer initialisation, NumPy scoring.

The re-ranker learns with ``river.linear_model.LogisticRegression.learn_one`` (plain SGD,
so its whole state is its weights) and scores a candidate list with one NumPy product over
the same weights, which gives River's own ``w . x + b`` without a Python call per candidate.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["new_layer", "layer_scores"]


def new_layer(learning_rate: float, l2: float = 0.0, init: Mapping[str, float] | None = None,
              intercept: bool = True):
    """A River logistic regression whose weights start at ``init`` (0 elsewhere).

    Starting from weights (rather than from 0) is how a layer inherits a ranking: with
    ``init={"global": 4.0}`` it orders candidates exactly by the ``global`` column.

    Examples
    --------
    >>> layer = new_layer(0.1, init={"global": 4.0})
    >>> layer.weights, round(layer.predict_proba_one({"global": 0.5})[True], 4)
    ({'global': 4.0}, 0.8808)
    """
    from river import linear_model, optim

    layer = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2,
                                            intercept_lr=learning_rate if intercept else 0.0)
    for name, value in (init or {}).items():
        # River has no per-feature initialiser; its weights are a VectorDict that accepts items
        layer._weights[name] = float(value)
    return layer


def layer_scores(layer, X: np.ndarray, columns: Sequence[str],
                 extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """``X @ w + b`` (+ weighted extra columns, e.g. a lower layer's logit) as float64, one per row."""
    weights = layer._weights
    w = np.fromiter((weights.get(c, 0.0) for c in columns), dtype=np.float64, count=len(columns))
    out = X @ w + layer.intercept
    for name, values in (extra or {}).items():
        out = out + weights.get(name, 0.0) * values
    return out
