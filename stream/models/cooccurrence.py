"""Incremental item-to-item co-occurrence (item-kNN), split the way the worker runs it.

Two halves, each with one writer:

* **user side** (the partition that owns the user): the user's recent positives, oldest
  first. A positive on an item not in that history pairs with the last ``window`` of them
  (:func:`pairs_for`), then joins the history (:func:`remember`);
* **item side** (each item's one owner): per item, ``n`` (positives on it) and a bounded
  row of neighbours with their pair counts (:class:`NeighbourTable`). Every worker holds a
  copy of every row for ranking.

``C[a, b]`` counts the users with positives on both; with ``pair_decay < 1`` a pair counts
``pair_decay ** (d - 1)``, ``d`` how many positives apart the two are in the user's sequence.
The similarity is ``C[a, b] / (n_a ** alpha * n_b ** (1 - alpha))`` (``alpha = 0.5``: the
cosine). A user's score for item ``j`` is ``sum_h decay ** age(h) * sim(h, j)`` over their
last ``history`` positives (age 0 = the most recent). ``decay=1, history=None, window=None``
is plain item-kNN; the evaluation's recency-weighted variant is ``decay=0.7, history=30,
window=30``.

A row keeps at most ``max_neighbours`` neighbours: when a merge passes that, the row keeps
its ``max_neighbours * 3 // 4`` largest counts (ties: the lower item row), so memory grows
with the catalogue, not with its square, and newcomers find room. ``max_neighbours=None``
keeps every pair (the evaluation's exact item-kNN, and the exactly-once tests).

Examples
--------
>>> params = CooccurrenceParams()
>>> history = []
>>> for item in ["x", "y"]:
...     print(pairs_for(history, item, params)); remember(history, item, params)
[]
[('x', 1.0)]
>>> table = NeighbourTable(max_neighbours=None)
>>> table.grow(2)
>>> table.add(np.array([1, 0]), np.array([0, 1]), np.array([1.0, 1.0]), np.array([0, 1]), np.array([1.0, 1.0]))
[0, 1]
>>> table.scores(np.array([0]), np.array([1.0]), 2, params.alpha).tolist()
[0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["CooccurrenceParams", "pairs_for", "remember", "NeighbourTable"]


@dataclass(frozen=True)
class CooccurrenceParams:
    """The co-occurrence model's parameters (see the module docstring).

    >>> CooccurrenceParams(decay=0.7, history=30, window=30).cap
    30
    >>> CooccurrenceParams(decay=2.0)
    Traceback (most recent call last):
    ...
    ValueError: CooccurrenceParams: decay must be in (0, 1], got 2.0
    """

    decay: float = 1.0
    history: int | None = None
    window: int | None = None
    pair_decay: float = 1.0
    alpha: float = 0.5
    max_neighbours: int | None = 200

    def __post_init__(self) -> None:
        for name in ("decay", "pair_decay"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"CooccurrenceParams: {name} must be in (0, 1], got {value}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"CooccurrenceParams: alpha must be in [0, 1], got {self.alpha}")
        for name in ("history", "window"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"CooccurrenceParams: {name} must be >= 1 or None, got {value}")
        if self.max_neighbours is not None and self.max_neighbours < 4:
            raise ValueError(f"CooccurrenceParams: max_neighbours must be >= 4 or None, got {self.max_neighbours}")

    @property
    def cap(self) -> int | None:
        """How many positives a user's history keeps (None: all): the longest either step needs."""
        return None if self.history is None or self.window is None else max(self.history, self.window)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> "CooccurrenceParams":
        """From a configuration's ``cooccurrence`` part (unknown keys are an error, ``track_seen`` is ignored)."""
        params = {k: v for k, v in (params or {}).items() if k != "track_seen"}
        return cls(**params)


def pairs_for(history: Sequence[str], item: str, params: CooccurrenceParams) -> list[tuple[str, float]] | None:
    """The pairs a positive on ``item`` forms with the user's history: (earlier item, pair
    weight) each, nearest last; None when ``item`` is in the history already (not a new positive)."""
    if item in history:
        return None
    past = list(history) if params.window is None else list(history[-params.window:])
    d = len(past)
    if params.pair_decay == 1.0:
        return [(h, 1.0) for h in past]
    return [(h, params.pair_decay ** (d - 1 - j)) for j, h in enumerate(past)]


def remember(history: list[str], item: str, params: CooccurrenceParams) -> None:
    """Append a new positive to a history (in place), dropping the oldest past ``params.cap``."""
    if item in history:
        return
    history.append(item)
    cap = params.cap
    if cap is not None and len(history) > cap:
        del history[: len(history) - cap]


_EMPTY_COLS = np.empty(0, dtype=np.int64)
_EMPTY_VALS = np.empty(0, dtype=np.float32)


class NeighbourTable:
    """Item side of co-occurrence: per item row, positives ``n`` and a bounded neighbour row.

    Rows are item rows of the worker's item index (the MF model's). The owner of an item
    changes its row with :meth:`add`; copies take published rows with :meth:`set_row`.
    """

    def __init__(self, max_neighbours: int | None = 200) -> None:
        self.max_neighbours = max_neighbours
        self.n = np.zeros(0, dtype=np.float64)
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self._packed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (indptr, cols, vals)
        self._keys_cache: tuple | None = None  # (the packed arrays it was made from, their sorted pair keys)

    def __len__(self) -> int:
        return len(self.cols)

    def grow(self, n_items: int) -> None:
        """Room for rows below ``n_items`` (a new row: no positives, no neighbours)."""
        if n_items <= len(self.cols):
            return
        extra = n_items - len(self.cols)
        self._packed = None
        self.cols.extend([_EMPTY_COLS] * extra)
        self.vals.extend([_EMPTY_VALS] * extra)
        if n_items > len(self.n):
            n = np.zeros(max(n_items, 2 * len(self.n), 8))
            n[: len(self.n)] = self.n
            self.n = n

    def add(self, a: np.ndarray, b: np.ndarray, w: np.ndarray, count_rows: np.ndarray,
            count_w: np.ndarray) -> list[int]:
        """As the owner: ``C[a, b] += w`` (pairs, rows may repeat) and ``n[count_rows] += count_w``;
        returns the rows that changed, sorted."""
        self._packed = None
        if len(count_rows):
            np.add.at(self.n, count_rows, count_w)
        changed = set(np.unique(count_rows).tolist())
        if len(a):
            order = np.lexsort((b, a))
            a, b, w = a[order], b[order], np.asarray(w, dtype=np.float64)[order]
            starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
            ends = np.r_[starts[1:], len(a)]
            for s, e in zip(starts.tolist(), ends.tolist()):
                row = int(a[s])
                self._merge(row, b[s:e], w[s:e])
                changed.add(row)
        return sorted(changed)

    def _merge(self, row: int, cols: np.ndarray, w: np.ndarray) -> None:
        """Add counts ``w`` at sorted columns ``cols`` (repeats allowed) to one row."""
        old_c, old_v = self.cols[row], self.vals[row]
        if len(cols) > 1:  # sorted: sum the repeats
            first = np.r_[True, cols[1:] != cols[:-1]]
            if not first.all():
                starts = np.flatnonzero(first)
                cols, w = cols[starts], np.add.reduceat(w, starts)
        at = np.searchsorted(old_c, cols)
        hit = np.zeros(len(cols), dtype=bool)
        inside = at < len(old_c)
        hit[inside] = old_c[at[inside]] == cols[inside]
        uv = old_v.astype(np.float64)
        if hit.any():
            np.add.at(uv, at[hit], w[hit])
        if hit.all():
            uc = old_c
        else:  # new neighbours go in at their place: the row stays sorted
            uc = np.insert(old_c, at[~hit], cols[~hit])
            uv = np.insert(uv, at[~hit], w[~hit])
        cap = self.max_neighbours
        if cap is not None and len(uc) > cap:
            keep = cap * 3 // 4
            # the largest counts; ties keep the lower item row (the columns are sorted)
            top = np.sort(np.argsort(-uv, kind="stable")[:keep])
            uc, uv = uc[top], uv[top]
        self.cols[row], self.vals[row] = uc, uv.astype(np.float32)

    def set_row(self, row: int, cols: np.ndarray, vals: np.ndarray, n: float) -> None:
        """As a copy: take a row as its owner published it (``cols`` sorted item rows)."""
        self.grow(row + 1)
        self._packed = None
        self.cols[row] = np.asarray(cols, dtype=np.int64)
        self.vals[row] = np.asarray(vals, dtype=np.float32)
        self.n[row] = n

    def packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row at once, CSR-style: (indptr, cols, vals); rebuilt after a change."""
        if self._packed is None:
            lengths = np.fromiter(map(len, self.cols), dtype=np.int64, count=len(self.cols))
            indptr = np.zeros(len(self.cols) + 1, dtype=np.int64)
            np.cumsum(lengths, out=indptr[1:])
            cols = np.concatenate(self.cols) if self.cols else _EMPTY_COLS
            vals = np.concatenate(self.vals) if self.vals else _EMPTY_VALS
            self._packed = (indptr, cols.astype(np.int64, copy=False), vals)
        return self._packed

    def score_many(self, user: np.ndarray, rows: np.ndarray, weights: np.ndarray, n_users: int, n_items: int,
                   alpha: float) -> np.ndarray:
        """Scores (n_users, n_items) of many users at once: history entry ``e`` is item row
        ``rows[e]`` of user ``user[e]`` with recency weight ``weights[e]``; one ``bincount``."""
        c = self.counts(n_items)
        indptr, pc, pv = self.packed()
        coef = weights / c[rows] ** alpha
        starts = indptr[rows]
        lengths = indptr[rows + 1] - starts
        total = int(lengths.sum())
        if not total:
            return np.zeros((n_users, n_items))
        offsets = np.cumsum(lengths) - lengths  # where each entry's neighbours start in the gather
        idx = np.repeat(starts - offsets, lengths) + np.arange(total)
        flat = np.bincount(pc[idx] + np.repeat(user, lengths) * n_items, weights=pv[idx] * np.repeat(coef, lengths),
                           minlength=n_users * n_items)
        return flat[: n_users * n_items].reshape(n_users, n_items) / c ** (1.0 - alpha)

    def counts(self, n_items: int) -> np.ndarray:
        """``max(n, 1)`` of every item row (the similarity's denominators)."""
        return np.maximum(self.n[:n_items], 1.0)

    def scores(self, history: np.ndarray, weights: np.ndarray, n_items: int, alpha: float,
               counts: np.ndarray | None = None) -> np.ndarray:
        """A user's score of every item from their history rows and their recency weights.

        ``counts``: :meth:`counts` when the caller scores many users against the same table.
        """
        if not len(history):
            return np.zeros(n_items, dtype=np.float64)
        c = self.counts(n_items) if counts is None else counts
        coef = weights / c[history] ** alpha
        cols = [self.cols[h] for h in history.tolist()]
        if len(cols) == 1:
            allc, allv = cols[0], self.vals[history[0]] * coef[0]
        else:
            allc = np.concatenate(cols)
            allv = np.concatenate([self.vals[h] * f for h, f in zip(history.tolist(), coef.tolist())])
        s = np.bincount(allc, weights=allv, minlength=n_items)[:n_items]
        return s / c ** (1.0 - alpha)

    def contributors(self, history: np.ndarray, weights: np.ndarray, targets: np.ndarray,
                     alpha: float) -> np.ndarray:
        """For each target item row, the history row that adds most to its score (-1: none;
        ties: the earlier in ``history``). Every (history, target) pair is looked up at once."""
        out = np.full(len(targets), -1, dtype=np.int64)
        if not len(history) or not len(targets):
            return out
        c = np.maximum(self.n, 1.0)
        coef = weights / c[history] ** alpha
        indptr, pc, pv = self.packed()
        n = len(self.cols)
        keys = self._keys(indptr, pc, n)
        want = (history[:, None] * n + targets[None, :]).ravel()  # (history x targets), row-major
        at = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
        found = keys[at] == want if len(keys) else np.zeros(len(want), dtype=bool)
        contrib = np.where(found, pv[at] if len(pv) else 0.0, 0.0).reshape(len(history), len(targets))
        contrib = contrib * coef[:, None]
        best = contrib.argmax(axis=0)
        has = contrib[best, np.arange(len(targets))] > 0
        out[has] = history[best[has]]
        return out

    def _keys(self, indptr: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
        """``row * n + col`` of every stored pair, sorted (rows ascending, columns sorted within)."""
        cached = self._keys_cache
        if cached is not None and cached[0] is self._packed:
            return cached[1]
        rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        keys = rows * n + cols
        self._keys_cache = (self._packed, keys)
        return keys

    def similar(self, row: int, k: int, alpha: float, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``row`` (rows, similarities), best first."""
        cols, vals = self.cols[row], self.vals[row].astype(np.float64)
        keep = cols != row
        cols, vals = cols[keep], vals[keep]
        if not len(cols):
            return cols, vals
        c = self.counts(n_items)
        sim = vals / (c[row] ** alpha * c[cols] ** (1.0 - alpha))
        order = np.lexsort((cols, -sim))[:k]
        return cols[order], sim[order]
