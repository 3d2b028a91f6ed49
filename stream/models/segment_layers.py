"""The re-ranker's River layers: one shared by every segment, one per segment, each segment guarded.

The shared layer scores ``w_0 . x + b_0`` over the candidate features ``x``; a segment's
layer scores ``w_s . x + v_s * base + b_s (+ its item biases)`` where ``base`` is the shared
layer's logit. Both start from the global ranking (see :mod:`stream.models.rerank`):
``w_0 = init_weight`` on ``global``, ``v_s = 1``, everything else 0. Without the shared
layer a segment's layer starts from ``init_weight`` on ``global`` itself.

A segment's layer and guard are created on its first use, with that segment's parameters.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from stream.models.guard import SegmentGuard
from stream.models.river_lr import layer_from_dict, layer_scores, layer_to_dict, new_layer

__all__ = ["SegmentLayers"]


class SegmentLayers:
    """The shared layer, and per segment a layer and a guard.

    Parameters
    ----------
    columns
        The dense feature names, in the feature matrix's column order.
    param
        ``param(segment, name)``: the segment's value of a parameter (its override or the default).
    shared
        Whether the shared layer exists.
    shared_learning_rate, init_weight
        The shared layer's SGD step, and its initial weight on ``global``.
    pairwise
        Layers learn from feature differences (no intercept) rather than single items.

    Examples
    --------
    >>> defaults = {"learning_rate": 0.1, "l2": 0.0, "guard_window": 50, "guard_margin": 0.0,
    ...             "guard_min_trials": 10, "guard_z": 2.0}
    >>> layers = SegmentLayers(["global", "seg_pop"], lambda s, name: defaults[name], True, 0.1, 4.0, True)
    >>> X = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 0.5]])
    >>> shared, seg = layers.scores("kids", X)
    >>> shared.tolist(), seg.tolist()  # untrained: both are 4 * global
    ([4.0, 2.0, 0.0], [4.0, 2.0, 0.0])
    >>> for _ in range(5):  # in this segment, seg_pop matters
    ...     layers.learn("kids", [(X[1] - X[0], shared[1] - shared[0], {}, True)])
    >>> np.argsort(-layers.scores("kids", X)[1]).tolist()
    [1, 0, 2]
    """

    def __init__(self, columns: Sequence[str], param: Callable[[str, str], Any], shared: bool,
                 shared_learning_rate: float, init_weight: float, pairwise: bool) -> None:
        self.columns = list(columns)
        self.param = param
        self.init_weight = init_weight
        self.pairwise = pairwise
        self.shared = new_layer(shared_learning_rate, 0.0, {"global": init_weight}, not pairwise) if shared else None
        self.layers: dict[str, Any] = {}
        self.guards: dict[str, SegmentGuard] = {}

    def layer(self, segment: str):
        """The segment's layer (created, with its guard, on first use)."""
        layer = self.layers.get(segment)
        if layer is None:
            p = self.param
            init = {"base": 1.0} if self.shared is not None else {"global": self.init_weight}
            layer = self.layers[segment] = new_layer(p(segment, "learning_rate"), p(segment, "l2"), init,
                                                     not self.pairwise)
            window = p(segment, "guard_window")
            self.guards[segment] = SegmentGuard(segment, window, p(segment, "guard_margin"),
                                                min(p(segment, "guard_min_trials"), window), p(segment, "guard_z"))
        return layer

    def guard(self, segment: str) -> SegmentGuard:
        self.layer(segment)
        return self.guards[segment]

    def scores(self, segment: str, X: np.ndarray, item_keys: list[str] | None = None):
        """(shared logits, segment logits) of the feature rows ``X``; item_keys name the rows' items."""
        layer = self.layer(segment)
        if self.shared is None:
            return np.zeros(len(X)), layer_scores(layer, X, self.columns, item_keys)
        shared = layer_scores(self.shared, X, self.columns)
        return shared, layer_scores(layer, X, self.columns, item_keys, {"base": shared})

    def learn(self, segment: str, examples: list[tuple[np.ndarray, float, dict[str, float], bool]]) -> None:
        """One ``learn_one`` per example (features, shared logit, item indicators, label) in each layer:
        the shared layer on the features, the segment's on them plus ``base`` and the indicators."""
        layer = self.layer(segment)
        for x, base, indicators, y in examples:
            features = dict(zip(self.columns, x.tolist()))
            if self.shared is not None:
                self.shared.learn_one(features, y)
                features["base"] = float(base)
            features.update(indicators)
            layer.learn_one(features, y)

    def switches(self) -> list[dict[str, Any]]:
        """Every guard switch so far, segment by segment, in trial order."""
        return [s for guard in self.guards.values() for s in guard.switches]

    # -- persistence (JSON-ready data) -------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"shared": layer_to_dict(self.shared) if self.shared is not None else None,
                "layers": {s: layer_to_dict(layer) for s, layer in self.layers.items()},
                "guards": {s: g.to_dict() for s, g in self.guards.items()}}

    def load(self, data: dict[str, Any]) -> None:
        self.shared = layer_from_dict(data["shared"]) if data["shared"] is not None else None
        self.layers = {s: layer_from_dict(d) for s, d in data["layers"].items()}
        self.guards = {s: SegmentGuard.from_dict(d) for s, d in data["guards"].items()}
