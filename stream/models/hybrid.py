"""Hybrid ranker: a weighted blend of online MF, item co-occurrence and decayed popularity."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from stream.models.base import OnlineModel
from stream.models.cooccurrence import Cooccurrence
from stream.models.mf import OnlineMF
from stream.models.popularity import Popularity

__all__ = ["HybridRanker"]

_PARTS = (("mf", OnlineMF), ("cooccurrence", Cooccurrence), ("popularity", Popularity))


def _normalise(x: np.ndarray, how: str) -> np.ndarray:
    if x.size == 0:
        return x
    if how == "z":
        std = float(x.std())
        return (x - x.mean()) / std if std > 0 else np.zeros_like(x)
    # "max": shift to a minimum of 0, scale to a maximum of 1
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


class HybridRanker(OnlineModel):
    """Blend of three online signals, each standardised over the catalogue, then weighted.

    ``score = mf_weight * z(MF) + cooccurrence_weight * z(item-kNN) + popularity_weight * z(pop)``
    where ``z`` maps a user's scores over all known items to [0, 1] (``normalise="max"``)
    or standardises them (``normalise="z"``: minus the mean, over the standard deviation). Each part sees every event, so the parts share the
    item order. A part whose weight is 0 is not built at all (and costs nothing).

    Parameters
    ----------
    mf_weight, cooccurrence_weight, popularity_weight
        Blend weights.
    mf, cooccurrence, popularity
        Constructor arguments of :class:`OnlineMF`, :class:`Cooccurrence` and
        :class:`Popularity` (dicts; ``None`` for their defaults).

    Examples
    --------
    >>> hybrid = HybridRanker(mf_weight=0.0, cooccurrence_weight=1.0, popularity_weight=0.1)
    >>> hybrid.learn_many(["a", "a", "b", "b", "c", "d"], ["x", "y", "x", "y", "x", "z"])
    >>> hybrid.rank("c", k=2)
    ['y', 'z']
    """

    _param_names = ("mf_weight", "cooccurrence_weight", "popularity_weight", "mf", "cooccurrence", "popularity", "normalise")

    def __init__(
        self,
        mf_weight: float = 1.0,
        cooccurrence_weight: float = 1.0,
        popularity_weight: float = 0.5,
        mf: dict[str, Any] | None = None,
        cooccurrence: dict[str, Any] | None = None,
        popularity: dict[str, Any] | None = None,
        normalise: str = "max",
    ) -> None:
        if normalise not in ("max", "z"):
            raise ValueError(f"HybridRanker: normalise must be 'max' or 'z', got {normalise!r}")
        self.mf_weight = mf_weight
        self.cooccurrence_weight = cooccurrence_weight
        self.popularity_weight = popularity_weight
        self.mf = mf
        self.cooccurrence = cooccurrence
        self.popularity = popularity
        self.normalise = normalise
        self._init_state()

    def _init_state(self) -> None:
        self.parts: dict[str, OnlineModel] = {}
        for name, cls in _PARTS:
            if getattr(self, f"{name}_weight") != 0:
                self.parts[name] = cls(**(getattr(self, name) or {}))
        if not self.parts:
            raise ValueError("HybridRanker: at least one blend weight must be non-zero")
        self._lead = next(iter(self.parts.values()))  # owns the item order and the seen sets

    @property
    def _items(self):  # type: ignore[override]
        return self._lead._items

    @property
    def _users(self):
        return self._lead._users

    @property
    def _seen(self):
        return self._lead._seen

    def learn_many(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        weights: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
    ) -> None:
        """Every part learns the same events, in order."""
        for part in self.parts.values():
            part.learn_many(user_ids, item_ids, weights, timestamps)

    def scores(self, user_id: str) -> np.ndarray:
        return self.score_parts(user_id)[0]

    def score_parts(self, user_id: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The blend and each part's own (unnormalised) scores, from one scoring of every part."""
        total = np.zeros(self.n_items, dtype=np.float32)
        raw = {}
        for name, part in self.parts.items():
            raw[name] = part.scores(user_id)
            total += np.float32(getattr(self, f"{name}_weight")) * _normalise(raw[name], self.normalise)
        return total, raw

    def _state_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for name, part in self.parts.items():
            for key, value in part._state_arrays().items():
                out[f"{name}.{key}"] = value
        return out

    def _load_arrays(self, a: dict[str, np.ndarray]) -> None:
        for name, part in self.parts.items():
            prefix = f"{name}."
            part._load_arrays({k[len(prefix):]: v for k, v in a.items() if k.startswith(prefix)})
