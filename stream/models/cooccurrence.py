"""Incremental item-to-item co-occurrence (item-kNN), split the way the worker runs it.

Two halves, each with one writer:

* **user side** (the partition that owns the user): the user's recent positives, oldest
  first. A positive on an item not in that history pairs with the last ``window`` of them
  (:func:`pair_run`), then joins the history (:func:`remember`);
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
...     print(pair_run(history, item, params)); remember(history, item, params)
([], None)
(['x'], None)
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

__all__ = ["CooccurrenceParams", "pair_run", "remember", "NeighbourTable"]


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


def pair_run(history: Sequence[str], item: str, params: CooccurrenceParams) -> tuple[list[str], list[float] | None] | None:
    """The pairs a positive on ``item`` forms with the user's history, as a run: (the earlier
    items, nearest last; their pair weights, None when all are 1); None when ``item`` is in the
    history already (not a new positive)."""
    if item in history:
        return None
    past = list(history) if params.window is None else list(history[-params.window:])
    if params.pair_decay == 1.0:
        return past, None
    d = len(past)
    return past, [params.pair_decay ** (d - 1 - j) for j in range(d)]


def remember(history: list[str], item: str, params: CooccurrenceParams) -> None:
    """Append a new positive to a history (in place), dropping the oldest past ``params.cap``."""
    if item in history:
        return
    history.append(item)
    cap = params.cap
    if cap is not None and len(history) > cap:
        del history[: len(history) - cap]


class NeighbourTable:
    """Item side of co-occurrence: per item row, positives ``n`` and a bounded neighbour row.

    Rows are item rows of the worker's item index (the MF model's). The owner of an item
    changes its row with :meth:`add`; copies take published rows with :meth:`set_row`.

    Storage is two dense arrays of ``width`` columns (neighbour rows ``cols``, int32, and their
    counts ``vals``, float32) and a length per row, so that scoring gathers every history row
    of a batch in one fancy index and the owner merges a batch's pairs with a few vectorised
    passes; the width grows with the longest row, up to ``max_neighbours``. Within a row the
    neighbours are kept in the order they arrived (:meth:`row` gives them sorted).
    """

    def __init__(self, max_neighbours: int | None = 200) -> None:
        self.max_neighbours = max_neighbours
        self.n = np.zeros(0, dtype=np.float64)
        self.length = np.zeros(0, dtype=np.int32)
        self.cols = np.full((0, 4), -1, dtype=np.int32)
        self.vals = np.zeros((0, 4), dtype=np.float32)
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    @property
    def width(self) -> int:
        return self.cols.shape[1]

    def grow(self, n_items: int) -> None:
        """Room for rows below ``n_items`` (a new row: no positives, no neighbours)."""
        if n_items <= self._rows:
            return
        if n_items > len(self.n):
            cap = max(n_items, 2 * len(self.n), 8)
            self.n = _grown(self.n, cap, 0.0)
            self.length = _grown(self.length, cap, 0)
            self.cols = _grown(self.cols, cap, -1)
            self.vals = _grown(self.vals, cap, 0.0)
        self._rows = n_items

    def _widen(self, needed: int) -> None:
        """At least ``needed`` columns (doubling; never past ``max_neighbours``)."""
        cap = self.max_neighbours
        width = self.width
        if needed <= width:
            return
        new = max(needed, 2 * width)
        if cap is not None:
            new = min(new, cap)
        if new <= width:  # at the cap already: a row past it is pruned, the arrays stay
            return
        cols = np.full((len(self.cols), new), -1, dtype=np.int32)
        vals = np.zeros((len(self.vals), new), dtype=np.float32)
        cols[:, :width], vals[:, :width] = self.cols, self.vals
        self.cols, self.vals = cols, vals

    def row(self, r: int, ordered: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One row's neighbours and their counts: (cols int64, vals float32), sorted by item row
        (``ordered=False``: as stored, which the row's owner and its copies keep alike)."""
        m = int(self.length[r])
        cols, vals = self.cols[r, :m].astype(np.int64), self.vals[r, :m].copy()
        if not ordered:
            return cols, vals
        order = np.argsort(cols, kind="stable")
        return cols[order], vals[order]

    def add(self, a: np.ndarray, b: np.ndarray, w: np.ndarray, count_rows: np.ndarray,
            count_w: np.ndarray) -> list[int]:
        """As the owner: ``C[a, b] += w`` (pairs, rows may repeat) and ``n[count_rows] += count_w``;
        returns the rows that changed, sorted."""
        count_rows = np.asarray(count_rows, dtype=np.int64)
        if len(count_rows):
            self.n[: self._rows] += np.bincount(count_rows, weights=count_w, minlength=self._rows)
        changed = [count_rows]
        if len(a):
            a, b, w = self._summed(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64),
                                   np.asarray(w, dtype=np.float64))
            self._merge(a, b, w)
            changed.append(a)
        rows = np.concatenate(changed)
        if not len(rows):
            return []
        return np.flatnonzero(np.bincount(rows, minlength=self._rows)).tolist()

    def _summed(self, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pairs sorted by (row, neighbour), repeats summed."""
        key = a * self._rows + b
        order = np.argsort(key, kind="stable")
        key, w = key[order], w[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        if len(first) < len(key):
            w = np.add.reduceat(w, first)
            key = key[first]
        return key // self._rows, key % self._rows, w

    def _merge(self, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> None:
        """Add unique pairs (sorted by row) to the rows: counts of known neighbours grow, new ones
        are appended, and a row past ``max_neighbours`` keeps its largest counts."""
        length = self.length
        m = int(length[a].max()) if len(a) else 0
        if m:  # where each pair's neighbour already is in its row (-1: not there)
            hit = self.cols[a, :m] == b[:, None].astype(np.int32)
            at = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        else:
            at = np.full(len(a), -1)
        known = at >= 0
        if known.any():
            ka, kat = a[known], at[known]
            self.vals[ka, kat] = (self.vals[ka, kat] + w[known]).astype(np.float32)
        new = ~known
        if not new.any():
            return
        na, nb, nw = a[new], b[new], w[new]
        starts = np.flatnonzero(np.r_[True, na[1:] != na[:-1]])
        runs = np.diff(np.r_[starts, len(na)])
        rank = np.arange(len(na)) - np.repeat(starts, runs)  # n-th new neighbour of its row
        pos = length[na] + rank
        rows_new, added = na[starts], runs
        total = length[rows_new] + added
        cap = self.max_neighbours
        self._widen(int(total.max()))
        fits = pos < self.width
        self.cols[na[fits], pos[fits]] = nb[fits]
        self.vals[na[fits], pos[fits]] = nw[fits]
        length[rows_new] = np.minimum(total, self.width)
        if cap is not None and (total > cap).any():
            self._prune(rows_new[total > cap], na[~fits], nb[~fits], nw[~fits])

    def _prune(self, rows: np.ndarray, ea: np.ndarray, eb: np.ndarray, ew: np.ndarray) -> None:
        """Full rows (sorted) past ``max_neighbours``, with the new neighbours that did not fit
        (``ea`` their rows, sorted), keep their ``max_neighbours * 3 // 4`` largest counts; ties
        keep the lower item row. Every such row at once: one 2-D sort."""
        width, keep = self.width, self.max_neighbours * 3 // 4
        at = np.searchsorted(rows, ea)
        starts = np.flatnonzero(np.r_[True, ea[1:] != ea[:-1]])
        rank = np.arange(len(ea)) - np.repeat(starts, np.diff(np.r_[starts, len(ea)]))
        extra = int(rank.max()) + 1 if len(rank) else 0
        C = np.full((len(rows), width + extra), -1, dtype=np.int64)
        V = np.full((len(rows), width + extra), -np.inf)
        C[:, :width], V[:, :width] = self.cols[rows], self.vals[rows]
        C[at, width + rank], V[at, width + rank] = eb, ew
        top = np.lexsort((C, -V), axis=-1)[:, :keep]  # the largest counts first, then the lower row
        self.cols[rows], self.vals[rows] = -1, 0.0
        self.cols[rows, :keep] = np.take_along_axis(C, top, axis=1)
        self.vals[rows, :keep] = np.take_along_axis(V, top, axis=1)
        self.length[rows] = keep

    def set_row(self, row: int, cols: np.ndarray, vals: np.ndarray, n: float) -> None:
        """As a copy: take a row as its owner published it."""
        self.grow(row + 1)
        m = len(cols)
        self._widen(m)
        self.cols[row, :] = -1
        self.vals[row, :] = 0.0
        self.cols[row, :m] = cols
        self.vals[row, :m] = vals
        self.length[row] = m
        self.n[row] = n

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The neighbour rows of ``rows`` at once: (cols, vals), each (len(rows), width) with
        the longest row's width; a short row is padded with column -1 and count 0."""
        m = int(self.length[rows].max()) if len(rows) else 0
        return self.cols[rows, :m], self.vals[rows, :m]

    def score_many(self, user: np.ndarray, rows: np.ndarray, weights: np.ndarray, n_users: int, n_items: int,
                   alpha: float) -> np.ndarray:
        """Scores (n_users, n_items) of many users at once: history entry ``e`` is item row
        ``rows[e]`` of user ``user[e]`` with recency weight ``weights[e]``; one ``bincount``."""
        c = self.counts(n_items)
        cols, vals = self.gather(rows)
        if not cols.size:
            return np.zeros((n_users, n_items))
        coef = weights / c[rows] ** alpha
        # every score is divided by its column's count ** (1 - alpha): per neighbour entry when
        # there are fewer entries than cells (a pass over the (n_users, n_items) matrix saved),
        # else per cell after. The factors are made once per item, with a last one of 1 that the
        # padding's column -1 picks.
        per_cell = cols.size > n_users * n_items
        contrib = vals * coef[:, None]
        if not per_cell:
            contrib *= np.append(c ** (alpha - 1.0), 1.0)[cols]
        # slot 0 of each user's block takes the padding (column -1); item row j is slot j + 1
        keys = (user * (n_items + 1) + 1)[:, None] + cols
        flat = np.bincount(keys.ravel(), weights=contrib.ravel(), minlength=n_users * (n_items + 1))
        out = flat.reshape(n_users, n_items + 1)[:, 1:]
        if per_cell:
            out /= c ** (1.0 - alpha)
        return out

    def counts(self, n_items: int) -> np.ndarray:
        """``max(n, 1)`` of every item row (the similarity's denominators)."""
        return np.maximum(self.n[:n_items], 1.0)

    def scores(self, history: np.ndarray, weights: np.ndarray, n_items: int, alpha: float) -> np.ndarray:
        """A user's score of every item from their history rows and their recency weights."""
        if not len(history):
            return np.zeros(n_items, dtype=np.float64)
        return self.score_many(np.zeros(len(history), dtype=np.int64), np.asarray(history, dtype=np.int64),
                               np.asarray(weights, dtype=np.float64), 1, n_items, alpha)[0]

    def contributors(self, history: np.ndarray, weights: np.ndarray, targets: np.ndarray,
                     alpha: float) -> np.ndarray:
        """For each target item row, the history row that adds most to its score (-1: none;
        ties: the earlier in ``history``): :meth:`contributors_many` for one user."""
        targets = np.asarray(targets, dtype=np.int64)
        if not len(targets):
            return np.full(0, -1, dtype=np.int64)
        return self.contributors_many(np.zeros(len(history), dtype=np.int64), np.asarray(history, dtype=np.int64),
                                      np.asarray(weights, dtype=np.float64), targets[None, :], self._rows, alpha)[0]

    def contributors_many(self, user: np.ndarray, rows: np.ndarray, weights: np.ndarray, targets: np.ndarray,
                          n_items: int, alpha: float) -> np.ndarray:
        """For many users at once, each target's history row that adds most to its score (-1: none;
        ties: the earlier in the history): history entry ``e`` is item row
        ``rows[e]`` of user ``user[e]`` (entries in history order) with weight ``weights[e]``;
        ``targets`` (users, T) item rows, -1 for none. Returns (users, T) history rows, -1: none."""
        V, T = targets.shape
        out = np.full((V, T), -1, dtype=np.int64)
        if not len(rows) or not T:
            return out
        c = np.maximum(self.n[: self._rows], 1.0)
        coef = weights / c[rows] ** alpha
        cols, vals = self.gather(rows)  # (E, m), padding -1
        width = n_items + 1  # slot 0 of a user's block: padding and "no target"
        slot = np.full(V * width, -1, dtype=np.int32)
        tv, tt = np.nonzero(targets >= 0)
        slot[tv * width + 1 + targets[tv, tt]] = tt
        hit = slot[(user * width + 1)[:, None] + cols]  # (E, m): target index of each neighbour, -1: none
        e, j = np.nonzero(hit >= 0)
        if not len(e):
            return out
        contrib = vals[e, j] * coef[e]
        group = user[e] * T + hit[e, j]
        order = np.lexsort((e, -contrib, group))  # per (user, target): the largest, then the earliest
        group, e, contrib = group[order], e[order], contrib[order]
        first = np.r_[True, group[1:] != group[:-1]] & (contrib > 0)
        out.reshape(-1)[group[first]] = rows[e[first]]
        return out

    def similar(self, row: int, k: int, alpha: float, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``row`` (rows, similarities), best first."""
        cols, vals = self.row(row)
        vals = vals.astype(np.float64)
        keep = cols != row
        cols, vals = cols[keep], vals[keep]
        if not len(cols):
            return cols, vals
        c = self.counts(n_items)
        sim = vals / (c[row] ** alpha * c[cols] ** (1.0 - alpha))
        order = np.lexsort((cols, -sim))[:k]
        return cols[order], sim[order]


def _grown(array: np.ndarray, rows: int, fill) -> np.ndarray:
    """``array`` with ``rows`` rows, the new ones filled with ``fill``."""
    out = np.full((rows, *array.shape[1:]), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out
