"""The re-ranker's River layers: one shared by every segment, one per segment stacked on it.

The shared layer scores ``w_0 . x`` over the candidate features ``x``; a segment's layer
scores ``w_s . x + v_s * base`` where ``base`` is the shared layer's logit. Both start from
the first stage's ranking (the transfer): ``w_0 = init_weight`` on ``global``, ``v_s = 1``,
everything else 0, so an untrained re-ranker orders the candidates exactly as the blend
does. Learning is pairwise: each example is the feature difference of a clicked candidate
and another candidate, label 1 (a logistic loss on the score difference; no intercept).

Layers are River ``LogisticRegression`` models (plain SGD: the whole state is the weights).
Their state is kept as *changes* since the transfer start (:meth:`SegmentLayers.changes`),
so that learners in several workers add their changes up.

Examples
--------
>>> params = RerankParams(learning_rate=0.1)
>>> layers = SegmentLayers(["global", "seg_pop"], params, {})
>>> X = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 0.5]])
>>> shared, seg = layers.scores("kids", X)
>>> shared.tolist(), seg.tolist()  # untrained: both are init_weight * global
([4.0, 2.0, 0.0], [4.0, 2.0, 0.0])
>>> for _ in range(5):  # in this segment, seg_pop matters
...     layers.learn("kids", [(X[1] - X[0], shared[1] - shared[0])])
>>> np.argsort(-layers.scores("kids", X)[1]).tolist()
[1, 0, 2]
>>> sorted(layers.changes())
['_shared', 'kids']
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stream.models.rerank.params import RerankParams
from stream.models.rerank.river_lr import layer_scores, new_layer

__all__ = ["SegmentLayers", "SHARED_LAYER"]

#: The name of the layer every segment shares.
SHARED_LAYER = "_shared"


class SegmentLayers:
    """The shared layer and the segments' layers, started from stored weight changes.

    Parameters
    ----------
    columns
        The feature names, in the feature matrix's column order.
    params
        The re-ranker's parameters (a segment's own learning rate and L2 come from
        ``params.of(segment, ...)``).
    changes
        Per layer, the weight changes learned so far (the state; {} for the transfer start).
    """

    def __init__(self, columns: Sequence[str], params: RerankParams, changes: dict[str, dict[str, float]]) -> None:
        self.columns = list(columns)
        self.params = params
        self._start = {name: dict(c) for name, c in changes.items()}
        self._layers: dict[str, object] = {}
        self._init: dict[str, dict[str, float]] = {}

    def _initial(self, name: str) -> dict[str, float]:
        if name == SHARED_LAYER:
            return {"global": float(self.params.init_weight)}
        return {"base": 1.0} if self.params.shared else {"global": float(self.params.init_weight)}

    def layer(self, name: str):
        """A layer (built on first use from its initial weights plus its stored changes)."""
        layer = self._layers.get(name)
        if layer is None:
            p = self.params
            lr = (p.shared_learning_rate or p.learning_rate) if name == SHARED_LAYER else p.of(name, "learning_rate")
            l2 = p.l2 if name == SHARED_LAYER else p.of(name, "l2")
            init = self._initial(name)
            for feature, change in self._start.get(name, {}).items():
                init[feature] = init.get(feature, 0.0) + change
            self._init[name] = dict(init)
            layer = self._layers[name] = new_layer(lr, l2, init, intercept=False)
        return layer

    def scores(self, segment: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shared logits, segment logits) of the feature rows ``X``."""
        seg = self.layer(segment)
        if not self.params.shared:
            return np.zeros(len(X)), layer_scores(seg, X, self.columns)
        shared = layer_scores(self.layer(SHARED_LAYER), X, self.columns)
        return shared, layer_scores(seg, X, self.columns, extra={"base": shared})

    def learn(self, segment: str, examples: list[tuple[np.ndarray, float]]) -> None:
        """One River ``learn_one`` per pairwise example (feature difference, shared-logit difference)
        in each layer: the shared layer on the features, the segment's on them plus ``base``."""
        seg = self.layer(segment)
        shared = self.layer(SHARED_LAYER) if self.params.shared else None
        for x, base in examples:
            features = dict(zip(self.columns, x.tolist()))
            if shared is not None:
                shared.learn_one(features, True)
                features["base"] = float(base)
            seg.learn_one(features, True)

    def changes(self) -> dict[str, dict[str, float]]:
        """Per layer used, how far learning moved each weight since these layers were built."""
        out = {}
        for name, layer in self._layers.items():
            before, after = self._init[name], layer.weights
            diff = {f: after.get(f, 0.0) - before.get(f, 0.0) for f in set(after) | set(before)}
            diff = {f: d for f, d in diff.items() if d != 0.0}
            if diff:
                out[name] = diff
        return out
