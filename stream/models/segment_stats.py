"""Per-segment item statistics for the re-ranker: decayed popularity, a dwell prior, item age.

Items are rows of the global model's item index (several segments share one item order);
segments are rows too, in first-seen order. For segment ``s`` and item ``j``:

* popularity ``pop[s, j] = sum_e w_e 2 ** (-(T_s - t_e) / half_life)`` over the segment's
  positive events on ``j``, where the clock ``T_s`` counts the segment's own events (a busy
  segment forgets faster in wall time, every segment remembers about the same number of events);
* dwell prior ``(sum_e w_e + m * mu_s) / (n_sj + m) - mu_s``: the item's mean signal in the
  segment (a positive's weight, a skip's -|w|, a neutral 0), shrunk towards the segment's
  mean ``mu_s`` with ``m = prior_events`` pseudo-events, minus that mean: > 0 when the
  segment's users like the item more than their usual item;
* age: event time since the item's ``created_at`` when given, else since its first event;
  without timestamps, global events since its first event.

Arrays grow as segments and items arrive (float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream.models.base import IdIndex, grow

__all__ = ["SegmentItemStats"]

_RESCALE_AT = 2.0 ** 60  # popularity is stored scaled by 2 ** (T / half_life); rescaled before overflow


class SegmentItemStats:
    """Decayed popularity, dwell prior and item age per segment and item.

    Parameters
    ----------
    half_life
        Segment events for a popularity contribution to halve.
    prior_events
        Pseudo-events of the dwell prior's shrinkage towards the segment mean.

    Examples
    --------
    >>> stats = SegmentItemStats(half_life=2.0)
    >>> for item, w in [(0, 1.0), (1, 1.0), (1, -1.0), (2, 0.0)]:
    ...     stats.learn_one("teens", item, w, n_items=3, ts=None)
    >>> stats.popularity("teens", np.array([0, 1, 2])).round(3).tolist()  # 4 events later
    [0.354, 0.5, 0.0]
    >>> stats.age(np.array([0, 2])).tolist()  # global events since first seen
    [3.0, 0.0]
    """

    def __init__(self, half_life: float = 1000.0, prior_events: float = 5.0) -> None:
        if half_life <= 0 or prior_events < 0:
            raise ValueError(f"SegmentItemStats: need half_life > 0 and prior_events >= 0, "
                             f"got {half_life}, {prior_events}")
        self.half_life = half_life
        self.prior_events = prior_events
        self.segments = IdIndex()
        self._pop = np.zeros((0, 0))  # (segments, items), scaled by 2 ** (clock / half_life)
        self._sum = np.zeros((0, 0))  # signal sum per (segment, item)
        self._n = np.zeros((0, 0))  # events per (segment, item)
        self._clock = np.zeros(0)  # events per segment
        self._scale = np.ones(0)  # 2 ** (clock / half_life) per segment, since the last rescale
        self._seg_sum = np.zeros(0)  # signal sum per segment
        self._first = np.zeros(0)  # first event time (or global event number) per item
        self._created = np.zeros(0)  # created_at per item, NaN when unknown
        self._n_items = 0
        self.events = 0
        self.now = -np.inf  # newest event time seen

    def grow_items(self, n_items: int) -> None:
        """Room for item rows below ``n_items`` (a new item has no events: zeros)."""
        if n_items <= self._n_items:
            return
        if n_items > self._pop.shape[1]:
            cols = grow(self._first, n_items).shape[0]
            self._resize(self._pop.shape[0], cols)
        self._first, self._created = grow(self._first, n_items), grow(self._created, n_items)
        self._first[self._n_items:] = np.nan
        self._created[self._n_items:] = np.nan
        self._n_items = n_items

    def _resize(self, rows: int, cols: int) -> None:
        for name in ("_pop", "_sum", "_n"):
            old = getattr(self, name)
            new = np.zeros((rows, cols))
            new[: old.shape[0], : old.shape[1]] = old
            setattr(self, name, new)

    def _segment(self, segment: str) -> int:
        s = self.segments.add(segment)
        n_seg = len(self.segments)
        if n_seg > self._clock.shape[0]:
            self._clock, self._seg_sum = grow(self._clock, n_seg), grow(self._seg_sum, n_seg)
            scale = grow(self._scale, n_seg)
            scale[n_seg - 1:] = 1.0
            self._scale = scale
        if n_seg > self._pop.shape[0]:
            self._resize(self._clock.shape[0], self._pop.shape[1])
        return s

    def set_created(self, item: int, created_at: float, n_items: int) -> None:
        """An item's creation time (the items topic's ``created_at``), used for its age."""
        self.grow_items(n_items)
        self._created[item] = created_at

    def learn_one(self, segment: str, item: int, weight: float, n_items: int, ts: float | None = None) -> None:
        """One event of ``segment`` on item row ``item`` (``n_items``: the global item count)."""
        self.grow_items(n_items)
        s = self._segment(segment)
        self.events += 1
        stamp = float(self.events) if ts is None else float(ts)
        if ts is not None:
            self.now = max(self.now, stamp)
        if np.isnan(self._first[item]):
            self._first[item] = stamp
        self._clock[s] += 1.0
        self._scale[s] *= 2.0 ** (1.0 / self.half_life)
        if self._scale[s] > _RESCALE_AT:
            self._pop[s] /= self._scale[s]
            self._scale[s] = 1.0
        signal = weight if weight >= 0 else -1.0
        if weight > 0:
            self._pop[s, item] += weight * self._scale[s]
        self._sum[s, item] += signal
        self._n[s, item] += 1.0
        self._seg_sum[s] += signal

    def popularity(self, segment: str, items: np.ndarray) -> np.ndarray:
        s = self.segments.get(segment)
        if s < 0:
            return np.zeros(len(items))
        return self._pop[s, items] / self._scale[s]

    def dwell_prior(self, segment: str, items: np.ndarray) -> np.ndarray:
        s = self.segments.get(segment)
        if s < 0 or self._clock[s] == 0:
            return np.zeros(len(items))
        mu = self._seg_sum[s] / self._clock[s]
        m = self.prior_events
        return (self._sum[s, items] + m * mu) / (self._n[s, items] + m) - mu

    def age(self, items: np.ndarray) -> np.ndarray:
        """Each item's age: event time since its created_at (or its first event), or, without
        timestamps, global events since its first event; 0 for an item not seen yet."""
        if not np.isfinite(self.now):
            origin, now = self._first[items], float(self.events)
        else:
            created = self._created[items]
            origin, now = np.where(np.isnan(created), self._first[items], created), self.now
        return np.nan_to_num(np.maximum(now - origin, 0.0), nan=0.0)

    # -- persistence ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        n_seg, n = len(self.segments), self._n_items
        return {
            "segments": self.segments.to_array(), "pop": self._pop[:n_seg, :n] / self._scale[:n_seg, None],
            "sum": self._sum[:n_seg, :n].copy(), "n": self._n[:n_seg, :n].copy(), "clock": self._clock[:n_seg].copy(),
            "seg_sum": self._seg_sum[:n_seg].copy(), "first": self._first[:n].copy(),
            "created": self._created[:n].copy(), "events": np.array(self.events), "now": np.array(self.now),
        }

    def load(self, a: dict[str, np.ndarray]) -> None:
        self.segments = IdIndex.from_array(a["segments"])
        self._pop, self._sum, self._n = (a[k].astype(np.float64).reshape(len(self.segments), -1)
                                         for k in ("pop", "sum", "n"))
        self._clock, self._seg_sum = a["clock"].astype(np.float64), a["seg_sum"].astype(np.float64)
        self._scale = np.ones(len(self.segments))
        self._first, self._created = a["first"].astype(np.float64), a["created"].astype(np.float64)
        self._n_items = len(self._first)
        self.events, self.now = int(a["events"]), float(a["now"])
