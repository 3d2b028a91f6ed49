"""The re-ranker's features of a user's candidates: the blend's score and parts, segment popularity.

Per candidate, in :data:`COLUMNS` order:

    global        the blend's score (the first stage's ranking)
    mf            the MF part's raw score
    cooccurrence  the co-occurrence part's raw score
    popularity    log1p of the blend's popularity part (decayed positive weight)
    seg_pop       log1p of the item's decayed popularity within the user's segment

each min-max scaled over the user's candidate list (``(x - min) / (max - min)``, 0 when all
are equal): every column in [0, 1] whatever the user's scale, each column's order kept, so
a weight on ``global`` alone orders the list exactly as the blend does.

Examples
--------
>>> R = np.array([[[3.0, 1.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0, 4.0]]])
>>> scaled(R)[0].tolist()
[[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLUMNS", "raw_features", "scaled"]

COLUMNS = ("global", "mf", "cooccurrence", "popularity", "seg_pop")


def raw_features(glob: np.ndarray, mf: np.ndarray, cooc: np.ndarray, pop: np.ndarray,
                 seg_pop: np.ndarray) -> np.ndarray:
    """Unscaled features of candidates (each argument one value per candidate; any leading shape)."""
    return np.stack([glob, mf, cooc, np.log1p(np.maximum(pop, 0.0)), np.log1p(np.maximum(seg_pop, 0.0))], axis=-1)


def scaled(R: np.ndarray) -> np.ndarray:
    """``R`` (lists, candidates, features) min-max scaled over each list's candidates."""
    lo = R.min(axis=-2, keepdims=True)
    span = R.max(axis=-2, keepdims=True) - lo
    return (R - lo) / np.where(span > 0, span, 1.0)
