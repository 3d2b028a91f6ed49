"""The online MF model split the way the worker runs it: users learned where their events
land, items learned by one owner each, item vectors copied to every worker.

    events of user u (partition of u) --user_step--> new row of u  +  item gradients
    item gradients --(item-updates topic, partition of the item)--> the item's owner
    owner --apply_gradients--> new item rows --(item-factors topic)--> every worker's copy

:class:`ShardedMF` is the NumPy part of that, free of Kafka and Redis: one instance per
worker holds the copy of every item row (and, for the items the worker owns, the rows it
writes). A user's state travels as a :class:`UserState` (the worker keeps it in Redis).

New rows start from a vector drawn from the model seed and the id itself, so every
worker, and a worker restarted from nothing, starts a new user or item at the same place.

Examples
--------
>>> mf = ShardedMF({"n_factors": 4, "learning_rate": 0.2, "n_negatives": 2, "seed": 1})
>>> users = [mf.new_user("ann")]
>>> grads = mf.learn_users(users, [0, 0], ["jazz", "blues"], [1.0, 1.0])
>>> sorted(grads.item_ids) == sorted(set(grads.item_ids)), users[0].n
(True, 2.0)
>>> rows = mf.apply_gradients(grads, now=0.0)
>>> [mf.item_state(r).version for r in rows.tolist() if mf.item_ids[r] == "jazz"]
[1]
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from stream.models._kernels import F32
from stream.models.mf import OnlineMF

__all__ = ["ShardedMF", "UserState", "ItemGradients", "ItemState", "item_partition"]


def item_partition(item_id: str, partitions: int) -> int:
    """The item-updates partition, hence the one owner, of an item (stable across processes).

    >>> item_partition("item-7", 4) == item_partition("item-7", 4)
    True
    """
    return zlib.crc32(item_id.encode("utf-8")) % partitions


class _Starts:
    """First vectors of new rows, from the model seed and each id alone: the sum of one row of each
    of two fixed normal tables, picked by 12 bits each of the id's CRC-32 (so N(0, scale^2) per
    factor, 16.7 million distinct starts, the same in every process), for many ids at once.

    >>> starts = _Starts(seed=1, kind=2, k=3, scale=0.1)
    >>> bool((starts.of(["a", "b"])[0] == starts.of(["a"])[0]).all()), starts.of(["a", "b"]).shape
    (True, (2, 3))
    """

    SIZE = 4096

    def __init__(self, seed: int, kind: int, k: int, scale: float) -> None:
        rng = np.random.default_rng([seed, kind])
        self.tables = rng.normal(0.0, scale / np.sqrt(2.0), (2, self.SIZE, k)).astype(F32)

    def of(self, ids: Sequence[str]) -> np.ndarray:
        h = np.fromiter((zlib.crc32(i.encode("utf-8")) for i in ids), dtype=np.int64, count=len(ids))
        return self.tables[0][h % self.SIZE] + self.tables[1][(h >> 12) % self.SIZE]


@dataclass
class UserState:
    """One user's row of the model: factors, bias, Adagrad accumulators, events learned."""

    user_id: str
    vector: np.ndarray  # (k,) float32
    bias: float = 0.0
    acc: float = 0.0
    acc_b: float = 0.0
    n: float = 0.0  # events learned from (with a non-zero signal)
    version: int = 0  # micro-batches that changed the row
    updated_at: float = 0.0

    def copy(self) -> "UserState":
        return UserState(self.user_id, self.vector.copy(), self.bias, self.acc, self.acc_b, self.n, self.version,
                         self.updated_at)


@dataclass
class ItemGradients:
    """The item half of a user step: per item, the summed gradient row ``[g_q | - | g_b]``,
    the summed squared bias gradient and the summed positive weight."""

    item_ids: list[str]
    grad: np.ndarray  # (m, k + 2) float32
    ex_b: np.ndarray  # (m,) float32
    pos_w: np.ndarray  # (m,) float64

    def __len__(self) -> int:
        return len(self.item_ids)

    def split(self, partitions: int) -> dict[int, "ItemGradients"]:
        """The gradients grouped by the owner partition of each item."""
        parts = np.array([item_partition(i, partitions) for i in self.item_ids], dtype=np.int64)
        out = {}
        for p in np.unique(parts).tolist():
            sel = np.flatnonzero(parts == p)
            out[p] = ItemGradients([self.item_ids[j] for j in sel.tolist()], self.grad[sel], self.ex_b[sel], self.pos_w[sel])
        return out


@dataclass
class ItemState:
    """One item's row as its owner publishes it (everything a new owner needs to go on)."""

    item_id: str
    vector: np.ndarray
    bias: float
    acc: float
    acc_b: float
    pop: float
    version: int
    updated_at: float


@dataclass
class _ItemMeta:
    version: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    updated_at: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))


class ShardedMF:
    """A worker's part of the online MF model (see the module docstring).

    ``params`` are :class:`OnlineMF`'s constructor arguments (``track_seen`` is ignored:
    the worker keeps seen items in Redis).
    """

    _USER, _ITEM = 1, 2

    def __init__(self, params: dict | None = None) -> None:
        params = dict(params or {})
        params["track_seen"] = False
        self.model = OnlineMF(**params)
        self.k = self.model.n_factors
        self.seed = self.model.seed
        self._meta = _ItemMeta()
        self._user_starts = _Starts(self.seed, self._USER, self.k, self.model.init_scale)
        self._item_starts = _Starts(self.seed, self._ITEM, self.k, self.model.init_scale)
        self.last_loss: float | None = None  # of the last learn_users batch

    @property
    def n_items(self) -> int:
        return self.model.n_items

    @property
    def item_ids(self) -> list[str]:
        return self.model.item_ids

    def item_rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``item_ids``; unknown items get their seeded first vector."""
        m = self.model
        before = m.n_items
        rows = m._items.add_many(item_ids)
        if m.n_items > before:
            m._grow_items(before)
            n = m.n_items
            self._meta.version = np.concatenate([self._meta.version, np.zeros(n - len(self._meta.version), np.int64)])
            self._meta.updated_at = np.concatenate([self._meta.updated_at, np.zeros(n - len(self._meta.updated_at))])
            m._Q[before:n] = self._item_starts.of(m._items.ids[before:n])
        return rows

    def start_vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """The first vectors new rows of these items get (the same in every process)."""
        return self._item_starts.of(item_ids)

    def new_user(self, user_id: str) -> UserState:
        return self.new_users([user_id])[0]

    def new_users(self, user_ids: Sequence[str]) -> list[UserState]:
        """Users' first rows (their seeded vectors), many at once."""
        vectors = self._user_starts.of(user_ids)
        return [UserState(uid, v) for uid, v in zip(user_ids, vectors)]

    # -- the user side -------------------------------------------------------
    def learn_users(self, users: list[UserState], u: Sequence[int], item_ids: Sequence[str],
                    weights: Sequence[float], now: float = 0.0, seed: Sequence[int] | None = None) -> ItemGradients:
        """Learn a micro-batch on the users' rows (``u`` indexes ``users``; updated in place).

        Returns the item gradients for the items' owners; nothing item-side changes here.
        ``seed`` (extra integers, e.g. from the batch's event ids) draws the sampled negatives
        with the model seed, so the same batch learns the same wherever and whenever it runs.
        """
        k = self.k
        u = np.asarray(u, dtype=np.int64)
        w = np.asarray(weights, dtype=F32)
        rows = self.item_rows(item_ids)
        P = np.empty((len(users), k + 2), dtype=F32)
        for j, s in enumerate(users):
            P[j, :k], P[j, k], P[j, k + 1] = s.vector, s.bias, 1.0
        aP = np.array([s.acc for s in users], dtype=F32)
        abu = np.array([s.acc_b for s in users], dtype=F32)
        self.last_loss = self._loss(P, u, rows, w)
        rng = None if seed is None else np.random.default_rng([self.seed, *seed])
        out_rows, grad, ex_b, pos_w = self.model.user_step(P, aP, abu, u, rows, w, rng)
        learned = np.bincount(u[w != 0], minlength=len(users))
        for j, s in enumerate(users):
            if learned[j]:
                s.vector, s.bias = P[j, :k].copy(), float(P[j, k])
                s.acc, s.acc_b = float(aP[j]), float(abu[j])
                s.n += float(learned[j])
                s.version += 1
                s.updated_at = now
        ids = self.model._items.ids
        return ItemGradients([ids[r] for r in out_rows.tolist()], grad, ex_b, pos_w)

    def _loss(self, P: np.ndarray, u: np.ndarray, rows: np.ndarray, w: np.ndarray) -> float | None:
        """Weighted logistic loss of the batch's signal events before learning from them
        (sampled negatives left out): the model-loss KPI."""
        sig = w != 0
        if not sig.any():
            return None
        k, m = self.k, self.model
        uu, rr, ww = u[sig], rows[sig], w[sig]
        s = np.einsum("ij,ij->i", P[uu, :k], m._Q[rr]) + P[uu, k] + m._bi[rr]
        s = np.where(ww > 0, -s, s).astype(np.float64)  # loss = log(1 + exp(-y's)), y' = +-1
        loss = np.logaddexp(0.0, s)
        return float((np.abs(ww) * loss).sum() / np.abs(ww).sum())

    def score_many(self, vectors: np.ndarray) -> np.ndarray:
        """``b_i + p_u . q_i`` of every known item for each row of ``vectors`` (U, k): (U, n_items)
        float32, one matrix product (the user bias does not change a ranking)."""
        n = self.model.n_items
        S = np.asarray(vectors, dtype=F32) @ self.model._Q[:n].T
        S += self.model._bi[:n]
        return S

    def positive_weight(self) -> np.ndarray:
        """Each item's summed positive signal so far (the negative sampler's count), float64."""
        return self.model._pop[: self.model.n_items]

    def versions(self) -> np.ndarray:
        """Each item row's version (owner updates so far; 0: never written by its owner)."""
        return self._meta.version[: self.model.n_items]

    def touch(self, rows: np.ndarray, now: float) -> None:
        """As the owner: count a change of these unique rows made outside MF (their version goes up)."""
        self._meta.version[rows] += 1
        self._meta.updated_at[rows] = now

    def init_item(self, item_id: str, like: Sequence[str], now: float) -> ItemState | None:
        """As the owner: start an item that has no row yet from the mean row of the items
        ``like`` it (those sharing its categories). None when the item has a row already
        (it learned before its metadata arrived) or no such item has one."""
        row = int(self.item_rows([item_id])[0])
        version = self._meta.version
        if version[row] > 0:
            return None
        pos = self.model._items._pos
        rows = [pos[i] for i in like if i in pos and pos[i] != row and version[pos[i]] > 0]
        if not rows:
            return None
        m = self.model
        m._Q[row] = m._Q[rows].mean(axis=0)
        m._bi[row] = float(m._bi[rows].mean())
        version[row] = 1
        self._meta.updated_at[row] = now
        return self.item_state(row)

    # -- the item side -------------------------------------------------------
    def apply_gradients(self, grads: ItemGradients, now: float) -> np.ndarray:
        """As the owner of these items: one Adagrad step each; returns their rows (sorted)."""
        if not len(grads):
            return np.empty(0, dtype=np.int64)
        rows = self.item_rows(grads.item_ids)
        order = np.argsort(rows, kind="stable")
        rows, grad = rows[order], np.array(grads.grad[order], dtype=F32)
        self.model.apply_item_gradients(rows, grad, np.array(grads.ex_b[order], dtype=F32))
        pos = grads.pos_w[order]
        if (pos > 0).any():
            self.model.add_popularity(rows[pos > 0], pos[pos > 0])
        self._meta.version[rows] += 1
        self._meta.updated_at[rows] = now
        return rows

    def item_state(self, row: int) -> ItemState:
        return self.item_states([row])[0]

    def item_states(self, rows) -> list[ItemState]:
        """The item rows at these positions as their owner publishes them (vectors copied)."""
        m = self.model
        rs = np.asarray(rows, dtype=np.int64)
        Q = m._Q[rs]
        ids = m._items.ids
        bi, aQ, abi, pop = m._bi[rs].tolist(), m._aQ[rs].tolist(), m._abi[rs].tolist(), m._pop[rs].tolist()
        version, updated = self._meta.version[rs].tolist(), self._meta.updated_at[rs].tolist()
        return [ItemState(ids[r], Q[j], bi[j], aQ[j], abi[j], pop[j], int(version[j]), updated[j])
                for j, r in enumerate(rs.tolist())]

    def load_item(self, state: ItemState, force: bool = False) -> bool:
        """Take an item row published by its owner; older versions than the one held are ignored
        (unless ``force``)."""
        if len(state.vector) != self.k:
            raise ValueError(f"item {state.item_id!r} has {len(state.vector)} factors: this model has {self.k}")
        row = int(self.item_rows([state.item_id])[0])
        if state.version <= self._meta.version[row] and not force:
            return False
        m = self.model
        m._Q[row], m._bi[row], m._aQ[row], m._abi[row] = state.vector, state.bias, state.acc, state.acc_b
        m._pop[row] = state.pop
        m._draw[row] = (state.pop + 1.0) ** m.sampling_alpha
        self._meta.version[row] = state.version
        self._meta.updated_at[row] = state.updated_at
        return True

    def item_ages(self, now: float) -> np.ndarray:
        """Seconds since each item row was last written by its owner (rows never written: left out)."""
        n = self.model.n_items
        t = self._meta.updated_at[:n]
        return now - t[t > 0]
