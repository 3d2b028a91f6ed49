"""Shared pieces of the online models: id index, seen items, top-K, state I/O, the Ranker contract.

:class:`Ranker` is what evaluation runs: a recommender fed contract events in micro-batches
that says, for each prequential trial, what it would have served before learning it. The
engine (``stream.engine.EngineRanker``) and the external baselines implement it; the
contract suite (tests/unit/test_rankers_contract.py) finds every concrete subclass.

The MF kernel (:class:`~stream.models.mf.OnlineMF`) has the array-level shape of
:class:`OnlineModel`:

* constructor arguments stored exactly as passed (``get_params()`` returns them);
* ``learn_one(user_id, item_id, weight=1.0, ts=None)`` and
  ``learn_many(user_ids, item_ids, weights=None, timestamps=None)`` return None.
  ``weight > 0`` is a positive signal of that strength, ``weight < 0`` an explicit
  negative (a skip), ``weight == 0`` marks the item as seen and teaches nothing;
* ``scores(user_id)`` gives one float per known item, in ``item_ids`` order;
* ``rank(user_id, k)`` gives the top-``k`` item ids, leaving out what the user has seen;
* ``state()`` / ``from_state()`` and ``save()`` / ``load()`` use plain arrays only
  (``np.savez`` with ``allow_pickle=False``; ids as unicode arrays).

"""

from __future__ import annotations

import itertools
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["IdIndex", "SeenItems", "OnlineModel", "Ranker", "Trial", "top_k", "top_many", "grow"]


def grow(array: np.ndarray, n_rows: int) -> np.ndarray:
    """Return ``array`` with room for at least ``n_rows`` rows (capacity doubles; new rows are 0).

    Examples
    --------
    >>> grow(np.ones((2, 3), dtype=np.float32), 5).shape
    (8, 3)
    """
    if n_rows <= array.shape[0]:
        return array
    capacity = max(n_rows, 2 * array.shape[0], 8)
    out = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
    out[: array.shape[0]] = array
    return out


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first, leaving out ``exclude``.

    Uses ``np.argpartition`` (linear time), then sorts only the ``k`` winners.
    Ties are broken by the lower index, so the result is deterministic.

    Examples
    --------
    >>> top_k(np.array([0.1, 0.9, 0.5, 0.7], dtype=np.float32), 2, exclude=np.array([1]))
    array([3, 2])
    >>> top_k(np.array([0.0, 0.0, 1.0, 1.0]), 3)  # ties at the cut: the lower index
    array([2, 3, 0])
    """
    if k <= 0:
        raise ValueError(f"top_k: k must be > 0, got {k}")
    if exclude is not None and len(exclude):
        scores = scores.copy()
        scores[exclude] = -np.inf
        n_valid = scores.shape[0] - len(np.unique(exclude))
    else:
        n_valid = scores.shape[0]
    k = min(k, n_valid)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < scores.shape[0]:
        part = np.argpartition(-scores, k - 1)[:k]
        # argpartition keeps any of the items tied at the cut: keep the lowest indices among them
        cut = scores[part].min()
        above = np.flatnonzero(scores > cut)
        part = np.concatenate([above, np.flatnonzero(scores == cut)[: k - len(above)]])
    else:
        part = np.arange(scores.shape[0])
    # lexsort: primary key -score, secondary key index (stable tie-break)
    order = np.lexsort((part, -scores[part]))
    return part[order].astype(np.int64)


def top_many(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n`` highest columns at once, best first (ties: the lower column), and how many
    of them have a finite score (``-inf`` marks a column left out).

    Each row is cut at a threshold first, and only the columns at or above it are sorted. The
    threshold is a lower bound of the row's ``n``-th largest score: a quantile of every
    ``stride``-th column when at least ``n`` columns reach it, else the ``n``-th largest itself
    (``np.partition`` of that row). The result is exact either way.

    Returns ``(columns (rows, n) int64 padded with -1, finite count per row)``.

    Examples
    --------
    >>> cols, valid = top_many(np.array([[0.1, 0.9, -np.inf, 0.7], [1.0, 1.0, 0.0, 2.0]]), 3)
    >>> cols.tolist(), valid.tolist()
    ([[1, 3, 0], [3, 0, 1]], [3, 3])
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    V, N = scores.shape
    n = min(n, N)
    cols = np.full((V, n), -1, dtype=np.int64)
    if V == 0 or n <= 0:
        return cols, np.zeros(V, dtype=np.int64)
    stride = N // (4 * n)
    if stride >= 2:
        sample = scores[:, ::stride]
        s = sample.shape[1]
        m = min(s, -(-2 * n // stride) + 4)  # about 2 n columns expected at or above it
        cut = np.partition(sample, s - m, axis=1)[:, s - m]
        cut[~np.isfinite(cut)] = np.finfo(np.float32).min  # fewer finite ones than that: all of them
        flat = np.flatnonzero(scores >= cut[:, None])  # row-major: columns ascending within a row
        counts = np.bincount(flat // N, minlength=V)
        short = np.flatnonzero(counts < n)
    else:
        flat, counts, short = np.empty(0, dtype=np.int64), np.zeros(V, dtype=np.int64), np.arange(V)
    if len(short):  # the sample's bound failed: the row's own n-th largest
        exact = np.partition(scores[short], N - n, axis=1)[:, N - n]
        exact[~np.isfinite(exact)] = np.finfo(np.float32).min
        more = np.flatnonzero(scores[short] >= exact[:, None])
        more = short[more // N] * N + more % N
        flat = np.sort(np.concatenate([flat[~np.isin(flat // N, short)], more]))
        counts = np.bincount(flat // N, minlength=V)
    rows = flat // N
    found = flat - rows * N
    width = int(counts.max()) if len(flat) else 0
    if width == 0:
        return cols, np.zeros(V, dtype=np.int64)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    # one sortable key per candidate: the score's bits (ordered as the floats), then the column
    # reversed, so that keys are unique and the larger key is the better (score, lower column)
    bits = scores.reshape(-1)[flat].view(np.uint32)
    bits = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    K = np.zeros((V, width), dtype=np.uint64)  # 0: no candidate (below every real key)
    K[rows, slot] = (bits << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - found.astype(np.uint64))
    take = min(n, width)
    best = np.argpartition(K, width - take, axis=1)[:, width - take:] if take < width else \
        np.broadcast_to(np.arange(width), (V, width))
    keys = np.take_along_axis(K, best, axis=1)
    keys = np.sort(keys, axis=1)[:, ::-1]
    neg_inf = np.uint64(int(np.float32(-np.inf).view(np.uint32) ^ 0xFFFFFFFF) << 32)
    real = keys > neg_inf | np.uint64(0xFFFFFFFF)  # a finite score (not padding, not -inf)
    out = (np.uint64(0xFFFFFFFF) - (keys & np.uint64(0xFFFFFFFF))).astype(np.int64)
    cols[:, :take] = np.where(real, out, -1)
    return cols, np.count_nonzero(cols >= 0, axis=1)


class IdIndex:
    """A growing map from external string ids to dense row indices (first-seen order).

    Examples
    --------
    >>> index = IdIndex()
    >>> index.add_many(["a", "b", "a"]).tolist()
    [0, 1, 0]
    >>> index.get("b"), index.get("zzz"), len(index)
    (1, -1, 2)
    >>> index.get_many(["b", "zzz", "a"]).tolist()
    [1, -1, 0]
    """

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self.ids: list[str] = []
        self._pos: dict[str, int] = {}
        self.add_many(list(ids))

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, key: str) -> int:
        return self._pos.get(key, -1)

    def get_many(self, keys: Sequence[str]) -> np.ndarray:
        """:meth:`get` of many keys at once (-1: unknown; nothing is added), at C speed."""
        return np.fromiter(map(self._pos.get, keys, itertools.repeat(-1)), dtype=np.int64, count=len(keys))

    def add(self, key: str) -> int:
        pos = self._pos.get(key)
        if pos is None:
            # A fresh copy (a numpy str_ becomes a plain str too): a lookup of an equal but
            # distinct string compares it with this key, and keys allocated together stay
            # in cache, not scattered over the caller's event objects (25 % of the mapping
            # time on the benchmark's 500,000-event stream).
            key = str(key).encode().decode()
            pos = self._pos[key] = len(self.ids)
            self.ids.append(key)
        return pos

    def rename(self, old: str, new: str) -> None:
        """Give the row of ``old`` the id ``new`` (not known yet)."""
        if new in self._pos:
            raise ValueError(f"IdIndex.rename: {new!r} has a row already")
        pos = self._pos.pop(old)
        key = str(new).encode().decode()
        self._pos[key] = pos
        self.ids[pos] = key

    def add_many(self, keys: Sequence[str]) -> np.ndarray:
        try:  # C-speed lookups: in steady state every id is already known
            return np.fromiter(map(self._pos.__getitem__, keys), dtype=np.int64, count=len(keys))
        except KeyError:
            pass
        found = list(map(self._pos.get, keys))
        add = self.add
        for j in [j for j, f in enumerate(found) if f is None]:
            found[j] = add(keys[j])
        return np.array(found, dtype=np.int64)

    def to_array(self) -> np.ndarray:
        return np.array(self.ids, dtype=np.str_) if self.ids else np.empty(0, dtype="<U1")

    @classmethod
    def from_array(cls, array: np.ndarray) -> "IdIndex":
        return cls(str(x) for x in array.tolist())


class SeenItems:
    """Per-user seen item indices, kept as sorted unique int64 keys ``user << 32 | item``.

    Learning appends keys to a pending buffer (vectorised, no per-event Python);
    the buffer is merged into the sorted keys when it outgrows half of them (a
    stable sort of two sorted runs is a linear merge). A user's items are a
    ``searchsorted`` range of the keys plus a scan of the small buffer. The keys are
    also the serialised form (CSR: indptr per user, item indices).

    Examples
    --------
    >>> seen = SeenItems()
    >>> seen.add_many(np.array([0, 0, 1]), np.array([3, 3, 2]))
    >>> seen.get(0).tolist(), seen.get(5).tolist()
    ([3], [])
    """

    _SHIFT = np.int64(32)
    _MASK = np.int64(0xFFFFFFFF)

    def __init__(self, keys: np.ndarray | None = None) -> None:
        self._keys = np.empty(0, dtype=np.int64) if keys is None else keys
        self._pending: list[np.ndarray] = []
        self._n_pending = 0

    def add_many(self, users: np.ndarray, items: np.ndarray) -> None:
        keys = users.astype(np.int64)  # a copy, shifted in place
        keys <<= self._SHIFT
        keys |= items
        self._pending.append(keys)
        self._n_pending += len(keys)
        # merging costs a pass over all keys: every half of them, amortised ~3 passes per key
        if self._n_pending > max(4096, len(self._keys) // 2):
            self._compact()

    def _pending_keys(self) -> np.ndarray:
        if len(self._pending) > 1:
            self._pending = [np.concatenate(self._pending)]
        return self._pending[0] if self._pending else np.empty(0, dtype=np.int64)

    def _compact(self) -> None:
        pending = np.sort(self._pending_keys())
        merged = np.sort(np.concatenate([self._keys, pending]), kind="stable")  # two runs: a merge
        if len(merged):
            keep = np.empty(len(merged), dtype=bool)
            keep[0] = True
            np.not_equal(merged[1:], merged[:-1], out=keep[1:])
            merged = merged[keep]
        self._keys = merged
        self._pending = []
        self._n_pending = 0

    def get(self, user: int) -> np.ndarray:
        lo, hi = np.searchsorted(self._keys, [np.int64(user) << self._SHIFT, np.int64(user + 1) << self._SHIFT])
        items = self._keys[lo:hi] & self._MASK
        if self._n_pending:
            pending = self._pending_keys()
            extra = pending[(pending >> self._SHIFT) == user] & self._MASK
            if len(extra):
                items = np.unique(np.concatenate([items, extra]))
        return items

    def to_arrays(self, n_users: int) -> tuple[np.ndarray, np.ndarray]:
        self._compact()
        users = self._keys >> self._SHIFT
        indptr = np.searchsorted(users, np.arange(n_users + 1, dtype=np.int64)).astype(np.int64)
        return indptr, self._keys & self._MASK

    @classmethod
    def from_arrays(cls, indptr: np.ndarray, indices: np.ndarray) -> "SeenItems":
        users = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        seen = cls()
        if len(users):
            seen.add_many(users, indices.astype(np.int64))
            seen._compact()
        return seen


class OnlineModel:
    """Mixin: parameters, ranking and plain-array persistence shared by every model.

    Subclasses define ``_init_state()``, ``learn_many``, ``scores``, ``_user_index``,
    ``_seen_indices``, ``_state_arrays`` and ``_load_arrays``.
    """

    _param_names: tuple[str, ...] = ()

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, exactly as passed."""
        return {name: getattr(self, name) for name in self._param_names}

    def clone(self) -> "OnlineModel":
        """A fresh, untrained model with the same parameters."""
        return type(self)(**self.get_params())

    @property
    def item_ids(self) -> list[str]:
        return self._items.ids

    @property
    def n_items(self) -> int:
        return len(self._items)

    def _index_batch(self, user_ids: Sequence[str], item_ids: Sequence[str],
                     weights: Sequence[float] | np.ndarray | None, dtype=np.float64):
        """A micro-batch as arrays: user rows, item rows (new ids get rows) and a copy of the
        weights (all 1 when None), after checking the lengths agree."""
        w = self._batch_weights(user_ids, item_ids, weights, dtype)
        return self._users.add_many(user_ids), self._items.add_many(item_ids), w

    def _batch_weights(self, user_ids: Sequence[str], item_ids: Sequence[str],
                       weights: Sequence[float] | np.ndarray | None, dtype=np.float64) -> np.ndarray:
        """A copy of a micro-batch's weights (all 1 when None), after checking the lengths agree."""
        name = f"{type(self).__name__}.learn_many"
        if len(user_ids) != len(item_ids):
            raise ValueError(f"{name}: user_ids and item_ids must have the same length, "
                             f"got {len(user_ids)} and {len(item_ids)}")
        w = np.ones(len(user_ids), dtype=dtype) if weights is None else np.array(weights, dtype=dtype)
        if w.shape != (len(user_ids),):
            raise ValueError(f"{name}: weights must have one value per event, got shape {w.shape}")
        return w

    def learn_one(self, user_id: str, item_id: str, weight: float = 1.0, ts: float | None = None) -> None:
        """Learn from one event; see ``learn_many``."""
        self.learn_many([user_id], [item_id], [weight], None if ts is None else [ts])

    def rank(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> list[str]:
        """The ``k`` best item ids for ``user_id``, best first, without the user's seen items."""
        if self.n_items == 0:
            return []
        scores = self.scores(user_id)
        exclude = self._seen_indices(user_id) if exclude_seen else None
        return [self._items.ids[j] for j in top_k(scores, k, exclude).tolist()]

    def _seen_indices(self, user_id: str) -> np.ndarray:
        u = self._users.get(user_id)
        return self._seen.get(u) if u >= 0 else np.empty(0, dtype=np.int64)

    # -- persistence ---------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """The whole model as plain arrays (no objects): parameters as JSON text."""
        arrays = {"__model__": np.array(type(self).__name__), "__params__": np.array(json.dumps(self.get_params()))}
        arrays.update(self._state_arrays())
        return arrays

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "OnlineModel":
        name = str(state["__model__"])
        if name != cls.__name__:
            raise ValueError(f"{cls.__name__}.from_state: state holds a {name}, not a {cls.__name__}")
        model = cls(**json.loads(str(state["__params__"])))
        model._load_arrays({k: v for k, v in state.items() if not k.startswith("__")})
        return model

    def save(self, path: str | os.PathLike) -> None:
        """Write ``state()`` with ``np.savez`` (load it back with ``load``, no pickle involved)."""
        with open(path, "wb") as fh:
            np.savez(fh, **self.state())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "OnlineModel":
        with np.load(path, allow_pickle=False) as data:
            return cls.from_state({k: data[k] for k in data.files})


@dataclass(frozen=True)
class Trial:
    """One prequential trial: the event (a click of a user with history on an item new to them)
    and the list the recommender would have served the user just before it."""

    position: int  # of the event in its batch
    user_id: str
    item_id: str
    ranked: list[str]
    segment: str = "all"


class Ranker(ABC):
    """A recommender as evaluation sees it: contract events in, trials out, lists on request.

    ``step(events)`` takes one micro-batch (:class:`stream.contract.Event`, in order) and returns
    the batch's trials (:class:`Trial`, in event order), each ranked as the user's list stood
    just before that event, then learns the batch. Which events are trials, and how much each
    event weighs, is :mod:`stream.signals`' rule, the same for every ranker.
    """

    @abstractmethod
    def step(self, events: Sequence[Any]) -> list[Trial]:
        """Score the batch's trials, then learn the batch."""

    @abstractmethod
    def recommend(self, user_id: str, k: int = 10) -> list[str]:
        """The user's current top-``k`` item ids, best first."""

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        """Small constructor arguments for the contract suite."""
        return {}
