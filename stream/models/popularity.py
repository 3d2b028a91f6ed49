"""Popularity with optional exponential time decay (a cold-start fallback and a blend signal)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stream.models.base import IdIndex, OnlineModel, SeenItems, grow

__all__ = ["Popularity"]


class Popularity(OnlineModel):
    """Sum of positive weights per item, optionally decayed by event time.

    With ``half_life=None`` the score is the plain count of positives so far. With a
    half-life (seconds of event time) an event's contribution halves every
    ``half_life`` seconds: the model keeps ``sum_e w_e * 2 ** (-(T - t_e) / half_life)``
    for the newest time ``T`` seen, rescaling all counts once per ``learn_many`` call.

    Parameters
    ----------
    half_life
        Seconds of event time for a contribution to halve; ``None`` for no decay.
    track_seen
        Remember each user's items so ``rank`` can leave them out.

    Examples
    --------
    >>> pop = Popularity()
    >>> pop.learn_many(["a", "b", "c", "c"], ["x", "y", "y", "z"])
    >>> pop.rank("a", k=2)
    ['y', 'z']
    >>> decayed = Popularity(half_life=10.0)
    >>> decayed.learn_many(["a", "b", "c"], ["x", "x", "y"], timestamps=[0.0, 0.0, 30.0])
    >>> decayed.scores("nobody").round(3).tolist()
    [0.25, 1.0]
    """

    _param_names = ("half_life", "track_seen")

    def __init__(self, half_life: float | None = None, track_seen: bool = True) -> None:
        if half_life is not None and half_life <= 0:
            raise ValueError(f"Popularity: half_life must be > 0 or None, got {half_life}")
        self.half_life = half_life
        self.track_seen = track_seen
        self._init_state()

    def _init_state(self) -> None:
        self._users = IdIndex()
        self._items = IdIndex()
        self._seen = SeenItems()
        self._counts = np.zeros(0, dtype=np.float64)
        self._now = -np.inf  # newest event time seen (the decay reference)

    def learn_many(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        weights: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
    ) -> None:
        """Count positive weights; negative and zero weights only mark items as seen."""
        u, i, w = self._index_batch(user_ids, item_ids, weights)
        self._counts = grow(self._counts, self.n_items)
        if self.track_seen:
            self._seen.add_many(u, i)
        w = np.where(w > 0, w, 0.0)
        if self.half_life is not None and timestamps is not None and len(timestamps):
            ts = np.asarray(timestamps, dtype=np.float64)
            newest = max(self._now, float(ts.max()))
            if np.isfinite(self._now) and newest > self._now:
                self._counts *= 2.0 ** (-(newest - self._now) / self.half_life)
            self._now = newest
            w = w * 2.0 ** (-(newest - ts) / self.half_life)
        np.add.at(self._counts, i, w)

    def scores(self, user_id: str) -> np.ndarray:
        return self._counts[: self.n_items].astype(np.float32)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        indptr, indices = self._seen.to_arrays(len(self._users))
        return {
            "user_ids": self._users.to_array(), "item_ids": self._items.to_array(),
            "counts": self._counts[: self.n_items].copy(), "now": np.array(self._now),
            "seen_indptr": indptr, "seen_indices": indices,
        }

    def _load_arrays(self, a: dict[str, np.ndarray]) -> None:
        self._users = IdIndex.from_array(a["user_ids"])
        self._items = IdIndex.from_array(a["item_ids"])
        self._counts = a["counts"].astype(np.float64)
        self._now = float(a["now"])
        self._seen = SeenItems.from_arrays(a["seen_indptr"], a["seen_indices"])
