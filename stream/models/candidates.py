"""A user's candidates from the global model, and their features for the re-ranker.

Candidates are the global model's top ``n`` for the user, its seen items left out, in the
global order (ties by item row, as :func:`~stream.models.base.top_k` breaks them). Each
candidate gets one row of features (``columns``), normalised over the candidate list:

    global        the global model's score                              min-max
    mf, cooccurrence, popularity
                  the hybrid's parts, each its own unnormalised score   min-max
    seg_pop       log1p(decayed popularity within the user's segment)   min-max
    dwell_prior   the item's shrunk mean signal in the segment, minus the segment's mean
                  (already on a fixed scale: kept as is)
    age           log1p(item age)                                       min-max

Min-max over the list (``(x - min) / (max - min)``, 0 when all are equal) puts every
column in [0, 1] whatever the user's scale, and keeps the order of each column: a weight
on ``global`` alone orders the list exactly as the global model does.
"""

from __future__ import annotations

import numpy as np

from stream.models.base import top_k
from stream.models.segment_stats import SegmentItemStats

__all__ = ["CandidateFeatures", "minmax_columns"]


def minmax_columns(R: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    """Each column of ``R`` where ``scaled`` is True mapped to [0, 1] by min-max over the rows
    (0 when all are equal); the other columns as they are.

    >>> minmax_columns(np.array([[1.0, 5.0], [3.0, -1.0], [2.0, 2.0]]), np.array([True, False])).tolist()
    [[0.0, 5.0], [1.0, -1.0], [0.5, 2.0]]
    """
    if not len(R):
        return R
    lo = np.where(scaled, R.min(axis=0), 0.0)
    span = np.where(scaled, R.max(axis=0) - lo, 1.0)
    return (R - lo) / np.where(span > 0, span, 1.0)


class CandidateFeatures:
    """Builds (candidate rows, feature matrix) for a user of a segment.

    Parameters
    ----------
    model
        The global model: a :class:`~stream.models.hybrid.HybridRanker` (its parts become
        columns) or any model with ``scores``.
    stats
        The segments' item statistics.

    Examples
    --------
    >>> from stream.models import HybridRanker
    >>> hybrid = HybridRanker(mf_weight=0.0, popularity_weight=0.5)
    >>> hybrid.learn_many(["a", "a", "b", "b", "c"], ["x", "y", "x", "z", "x"])
    >>> features = CandidateFeatures(hybrid, SegmentItemStats())
    >>> features.columns
    ['global', 'cooccurrence', 'popularity', 'seg_pop', 'dwell_prior', 'age']
    >>> rows, X = features.build("c", "pets", n=5)
    >>> [hybrid.item_ids[r] for r in rows], X[:, 0].tolist()
    (['y', 'z'], [0.0, 0.0])
    """

    def __init__(self, model, stats: SegmentItemStats) -> None:
        self.model = model
        self.stats = stats
        self._parts = list(model.parts) if hasattr(model, "score_parts") else []
        self.columns = ["global"] + self._parts + ["seg_pop", "dwell_prior", "age"]
        self._minmax = np.array([c != "dwell_prior" for c in self.columns])

    def _scores(self, user_id: str) -> list[np.ndarray]:
        """The global score, then each part's, over every known item."""
        if self._parts:
            total, parts = self.model.score_parts(user_id)
            return [total] + [parts[name] for name in self._parts]
        return [self.model.scores(user_id)]

    def build(self, user_id: str, segment: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's top-``n`` item rows in global order, and their features, shape (len(rows), F)."""
        n_items = self.model.n_items
        if n_items == 0:
            return np.empty(0, dtype=np.int64), np.zeros((0, len(self.columns)))
        scores = self._scores(user_id)
        rows = top_k(scores[0], n, self.model._seen_indices(user_id))
        self.stats.grow_items(n_items)
        R = np.column_stack([s[rows].astype(np.float64) for s in scores] + [
            np.log1p(self.stats.popularity(segment, rows)),
            self.stats.dwell_prior(segment, rows),
            np.log1p(self.stats.age(rows)),
        ])
        return rows, minmax_columns(R, self._minmax)
