"""River logistic regression as a re-ranking layer: transfer initialisation, NumPy scoring, plain state.

The re-ranker learns with ``river.linear_model.LogisticRegression.learn_one`` (plain SGD,
so its whole state is the weights, the intercept and the step counter) and scores a
candidate list with one NumPy product over the same weights, which gives River's own
``w . x + b`` without a Python call per candidate.

Features are dense columns (named) plus one sparse indicator per item, ``i:<item id>``,
whose weight is the layer's own bias for that item.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["new_layer", "layer_scores", "layer_to_dict", "layer_from_dict", "item_key"]


def item_key(item_id: str) -> str:
    """The name of an item's indicator feature."""
    return f"i:{item_id}"


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


def layer_scores(layer, X: np.ndarray, columns: Sequence[str], item_keys: Sequence[str] | None = None,
                 extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """``X @ w + b`` (+ the items' bias weights, + weighted extra columns) as float64, one per row.

    ``extra`` maps a feature name to its column of values (e.g. a lower layer's logit).
    """
    weights = layer._weights
    w = np.fromiter((weights.get(c, 0.0) for c in columns), dtype=np.float64, count=len(columns))
    out = X @ w + layer.intercept
    if item_keys is not None:
        out += np.fromiter((weights.get(key, 0.0) for key in item_keys), dtype=np.float64, count=len(item_keys))
    for name, values in (extra or {}).items():
        out += weights.get(name, 0.0) * values
    return out


def layer_to_dict(layer) -> dict[str, Any]:
    """The layer as JSON-ready data: parameters, weights, intercept, optimizer steps."""
    return {"learning_rate": layer.optimizer.learning_rate, "l2": layer.l2, "weights": layer.weights,
            "intercept": layer.intercept, "learn_intercept": layer.intercept_lr.learning_rate != 0,
            "steps": layer.optimizer.n_iterations}


def layer_from_dict(data: Mapping[str, Any]):
    layer = new_layer(data["learning_rate"], data["l2"], data["weights"], data["learn_intercept"])
    layer.intercept = float(data["intercept"])
    layer.optimizer.n_iterations = int(data["steps"])
    return layer
