"""Popularity that decays with event time: one rule for segment popularity and the blend's.

A score is kept relative to a reference time ``ref``: an event of weight ``w`` at time ``t``
adds ``w * exp((t - ref) * rate)``, ``rate = ln 2 / half_life``. Growing the increment
forward in event time is the same as decaying every older score, without touching them.
When ``(t - ref) * rate`` passes :data:`RESCALE_AT` the scores are multiplied by
``exp(-(t - ref) * rate)`` and ``ref`` moves to ``t``, so nothing overflows. Comparing two
scores kept with different references converts them to one (:func:`at_reference`).
``half_life=None`` does not decay: plain sums of positive weight.

Only positive weights count: popularity is what users liked, not what they saw or skipped.

Two places keep such scores, with the same arithmetic:

* segment popularity (the cold-start ranking and a re-ranker feature): one score set per
  segment, in the state (:mod:`stream.state`), changed by :func:`plan`'s increments;
* the blend's global popularity: one score per item, on the item side
  (:class:`ItemPopularity`), kept by each item's owner.

Examples
--------
>>> rate = decay_rate(10.0)
>>> ref, factor, inc = plan(None, [(0.0, 1.0, "x"), (10.0, 1.0, "y")], rate)
>>> ref, factor, {i: round(v, 3) for i, v in inc.items()}
(0.0, None, {'x': 1.0, 'y': 2.0})
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

__all__ = ["RESCALE_AT", "decay_rate", "plan", "at_reference", "ItemPopularity"]

RESCALE_AT = 50.0


def decay_rate(half_life: float | None) -> float:
    """Decay per second of event time (0 without a half-life).

    >>> decay_rate(None), round(decay_rate(math.log(2.0)), 6)
    (0.0, 1.0)
    """
    if half_life is None:
        return 0.0
    if half_life <= 0:
        raise ValueError(f"popularity: half_life must be > 0 or None, got {half_life}")
    return math.log(2.0) / half_life


def plan(ref: float | None, events: Iterable[tuple[float, float, str]], rate: float):
    """A batch's changes to one score set kept at reference ``ref`` (None: none yet).

    ``events`` are (ts, weight, item), positives only counted. Returns ``(new_ref, factor,
    increments)``: when ``factor`` is not None every stored score is first multiplied by it
    and the reference becomes ``new_ref``; then ``increments`` (item -> amount) are added.
    """
    events = [(float(t), float(w), i) for t, w, i in events if w > 0]
    if not events:
        return ref, None, {}
    new_ref, factor = ref, None
    if new_ref is None:
        new_ref = events[0][0]
    top = max(t for t, _, _ in events)
    if rate > 0 and (top - new_ref) * rate > RESCALE_AT:
        factor = math.exp(-(top - new_ref) * rate)
        new_ref = top
    inc: dict[str, float] = {}
    for t, w, item in events:
        inc[item] = inc.get(item, 0.0) + w * math.exp((t - new_ref) * rate)
    return new_ref, factor, inc


def at_reference(values: np.ndarray, refs: np.ndarray, ref: float, rate: float) -> np.ndarray:
    """Scores kept at references ``refs``, as they read at reference ``ref``."""
    if rate == 0.0:
        return values
    with np.errstate(under="ignore", over="ignore"):
        return values * np.exp((refs - ref) * rate)


class ItemPopularity:
    """The blend's popularity: one decayed score per item row, kept by the item's owner.

    Each row has its own reference (owners rescale their rows independently); ranking
    reads every row at the newest reference (:meth:`scores`).

    Examples
    --------
    >>> pop = ItemPopularity(half_life=None)
    >>> pop.grow(3)
    >>> pop.add(np.array([0, 2]), np.array([1.0, 2.0]), ref=5.0)
    >>> pop.scores(3).tolist()
    [1.0, 0.0, 2.0]
    """

    def __init__(self, half_life: float | None) -> None:
        self.half_life = half_life
        self.rate = decay_rate(half_life)
        self.values = np.zeros(0, dtype=np.float64)
        self.refs = np.zeros(0, dtype=np.float64)
        self._n = 0
        self.version = 0  # changes with every write (readers cache what they computed from it)

    def grow(self, n_items: int) -> None:
        if n_items <= self._n:
            return
        self.version += 1
        if n_items > len(self.values):
            cap = max(n_items, 2 * len(self.values), 8)
            for name in ("values", "refs"):
                old = getattr(self, name)
                new = np.zeros(cap)
                new[: len(old)] = old
                setattr(self, name, new)
        self._n = n_items

    def add(self, rows: np.ndarray, amounts: np.ndarray, ref: float) -> None:
        """As the owner: add ``amounts`` (positive weight, kept at reference ``ref``) to unique ``rows``."""
        if not len(rows):
            return
        self.version += 1
        vals, refs = self.values[rows], self.refs[rows]
        fresh = (vals == 0.0) & (refs == 0.0)
        refs = np.where(fresh, ref, refs)
        if self.rate > 0:
            late = (ref - refs) * self.rate > RESCALE_AT  # this row's reference is far behind: move it
            if late.any():
                vals = np.where(late, vals * np.exp(-(ref - refs) * self.rate), vals)
                refs = np.where(late, ref, refs)
        # an amount kept at reference ``ref``, read at the row's reference
        vals = vals + at_reference(np.asarray(amounts, dtype=np.float64), np.full(len(rows), ref), refs, self.rate)
        self.values[rows], self.refs[rows] = vals, refs

    def set_row(self, row: int, value: float, ref: float) -> None:
        self.grow(row + 1)
        self.version += 1
        self.values[row], self.refs[row] = value, ref

    def scores(self, n_items: int) -> np.ndarray:
        """Every row's score read at the newest reference of all rows."""
        vals, refs = self.values[:n_items], self.refs[:n_items]
        if not n_items or self.rate == 0.0:
            return vals.copy()
        return at_reference(vals, refs, float(refs.max()), self.rate)
