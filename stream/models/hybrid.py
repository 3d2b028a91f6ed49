"""The blend: online MF, item co-occurrence and decayed popularity, each normalised, weighted.

``score = mf_weight * z(MF) + cooccurrence_weight * z(item-kNN) + popularity_weight * z(pop)``
where ``z`` (:func:`normalise`) maps one user's scores over every known item to [0, 1]
(``normalise="max"``: min-max) or standardises them (``normalise="z"``). A part whose weight is
0 is not computed; a part a user has nothing for (no learned MF row, no positives yet) is left
out of that user's blend. The engine computes it for many users at once
(:meth:`stream.engine.blend.Blend.matrix`), each part scaled by :func:`scale` without the shift
``normalise`` would subtract: a constant per user, so the same order and the same top items.

:class:`HybridParams` is the whole model configuration of the ranking's first stage (the
parts' own parameters included); ``streamrec tune`` writes it and the engine
(:mod:`stream.engine`) runs it, offline and in the worker alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.models.cooccurrence import CooccurrenceParams

__all__ = ["HybridParams", "normalise", "scale", "DEFAULT_MF"]

#: The MF part's defaults (docs/EVALUATION.md, chosen on MovieLens-100K).
DEFAULT_MF: dict[str, Any] = {
    "n_factors": 64, "learning_rate": 0.1, "l2": 1e-4, "n_negatives": 16, "negative_weight": 0.05,
    "sampling_alpha": 0.3, "init_scale": 0.1, "passes": 1, "seed": 0,
}


def normalise(x: np.ndarray, how: str) -> np.ndarray:
    """Scores mapped to [0, 1] (``"max"``: min-max) or standardised (``"z"``), each row on its own
    (one row per user; a 1-D array is one user); a constant row gives zeros.

    >>> normalise(np.array([1.0, 3.0]), "max").tolist(), normalise(np.array([[2.0, 2.0], [0.0, 4.0]]), "z").tolist()
    ([0.0, 1.0], [[0.0, 0.0], [-1.0, 1.0]])
    """
    X = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if how == "z":
        mean = X.mean(axis=1, keepdims=True)
        std = X.std(axis=1, keepdims=True)
        out = np.where(std > 0, (X - mean) / np.where(std > 0, std, 1.0), 0.0)
    else:
        lo = X.min(axis=1, keepdims=True) if X.size else X
        span = X.max(axis=1, keepdims=True) - lo if X.size else X
        out = np.where(span > 0, (X - lo) / np.where(span > 0, span, 1.0), 0.0)
    return out if np.ndim(x) == 2 else out[0]


def scale(X: np.ndarray, how: str) -> np.ndarray:
    """Per row, the factor :func:`normalise` multiplies by: ``1 / (max - min)`` (``"max"``) or
    ``1 / std`` (``"z"``), 0 for a constant row. ``X * scale(X)`` differs from ``normalise(X)``
    by a constant per row only, so it ranks every row's items the same, and blends the same
    (the engine adds the parts this way, without the shifts: a pass over the matrix fewer).

    >>> scale(np.array([[1.0, 3.0], [2.0, 2.0]]), "max").tolist()
    [0.5, 0.0]
    """
    X = np.atleast_2d(X)
    if not X.size:
        return np.zeros(X.shape[0])
    width = X.std(axis=1) if how == "z" else X.max(axis=1) - X.min(axis=1)
    return np.where(width > 0, 1.0 / np.where(width > 0, width, 1.0), 0.0)


@dataclass(frozen=True)
class HybridParams:
    """The first stage's configuration: blend weights and the parts' parameters.

    ``mf``: :class:`~stream.models.mf.OnlineMF` arguments; ``cooccurrence``:
    :class:`~stream.models.cooccurrence.CooccurrenceParams` fields; ``popularity``:
    ``{"half_life": seconds or None}``.
    """

    mf_weight: float = 0.3
    cooccurrence_weight: float = 1.0
    popularity_weight: float = 0.1
    mf: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MF))
    cooccurrence: dict[str, Any] = field(default_factory=lambda: {"decay": 0.7, "history": 30, "window": 30})
    popularity: dict[str, Any] = field(default_factory=lambda: {"half_life": 7 * 86400.0})
    normalise: str = "max"

    def __post_init__(self) -> None:
        if self.normalise not in ("max", "z"):
            raise ValueError(f"HybridParams: normalise must be 'max' or 'z', got {self.normalise!r}")
        if not any((self.mf_weight, self.cooccurrence_weight, self.popularity_weight)):
            raise ValueError("HybridParams: at least one blend weight must be non-zero")
        CooccurrenceParams.from_dict(self.cooccurrence)  # checked here, with the rest

    @property
    def cooc(self) -> CooccurrenceParams:
        return CooccurrenceParams.from_dict(self.cooccurrence)

    @property
    def mf_params(self) -> dict[str, Any]:
        return {k: v for k, v in {**DEFAULT_MF, **(self.mf or {})}.items() if k != "track_seen"}

    @property
    def popularity_half_life(self) -> float | None:
        return (self.popularity or {}).get("half_life")

    def as_dict(self) -> dict[str, Any]:
        return {"mf_weight": self.mf_weight, "cooccurrence_weight": self.cooccurrence_weight,
                "popularity_weight": self.popularity_weight, "mf": dict(self.mf or {}),
                "cooccurrence": dict(self.cooccurrence or {}), "popularity": dict(self.popularity or {}),
                "normalise": self.normalise}

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "HybridParams":
        known = {"mf_weight", "cooccurrence_weight", "popularity_weight", "mf", "cooccurrence", "popularity",
                 "normalise"}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"HybridParams: unknown parameters {sorted(unknown)} (known: {sorted(known)})")
        base = cls()
        return cls(**{**{k: getattr(base, k) for k in known}, **params})
