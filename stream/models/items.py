"""The item side of the model: every item's MF row, co-occurrence row and popularity, in one table.

Each item has one writer, its owner (``item_partition``). A batch's user side produces an
:class:`ItemUpdate` (MF gradients, positive weight, new co-occurrence pairs and counts); the
owner applies it with :meth:`ItemTable.apply` and publishes the changed rows
(:class:`ItemRow`), which every other holder of a copy takes with :meth:`ItemTable.load_row`
(a row carries a version; an older one never replaces a newer one).

Offline evaluation holds one table and applies a batch's update right after the batch; the
worker holds a copy of every row, and, for the items it owns, the rows it writes.

Examples
--------
>>> from stream.models.hybrid import HybridParams
>>> table = ItemTable(HybridParams(mf={"n_factors": 4}))
>>> update = ItemUpdate.empty(4)
>>> update.add_pairs(["x"], ["y"], [1.0]); update.add_counts(["x"], [1.0])
>>> update.ids
['x', 'y']
>>> [table.item_ids[r] for r in table.apply(update, now=1.0)]
['x']
>>> row = table.row(table.rows(["x"])[0])
>>> row.neighbour_keys.tolist() == [item_key("y")], row.counts.tolist(), row.n, row.mf.version
(True, [1.0], 1.0, 1)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np

from stream.models._kernels import F32
from stream.models.cooccurrence import NeighbourTable
from stream.models.hybrid import HybridParams
from stream.models.popularity import ItemPopularity
from stream.models.sharded import ItemGradients, ItemState, ShardedMF
from stream.models.sharded import item_partition as _partition

__all__ = ["ItemTable", "ItemUpdate", "ItemRow", "item_key"]


@lru_cache(maxsize=1 << 17)  # a catalogue's ids come back batch after batch
def item_key(item_id: str) -> int:
    """An item's stable 63-bit key: the same in every process, so rows name their neighbours by
    key, not by id (blake2b of the id's UTF-8; two of a million items share a key with a
    chance of about 5e-8).

    >>> item_key("i1") == item_key("i1") != item_key("i2")
    True
    """
    return int.from_bytes(hashlib.blake2b(item_id.encode("utf-8"), digest_size=8).digest(), "little") >> 1


@dataclass
class ItemRow:
    """One item's row as its owner publishes it: everything another owner needs to go on."""

    item_id: str
    mf: ItemState  # factors, bias, Adagrad accumulators, sampler weight, version, updated_at
    n: float  # co-occurrence: positives on the item
    neighbour_keys: np.ndarray  # co-occurrence row: the neighbours' item_key, int64 ...
    counts: np.ndarray  # ... and their pair counts, float32
    popularity: float  # the blend's decayed popularity, kept at ...
    popularity_ref: float  # ... this reference time
    wire: bytes | None = field(default=None, repr=False, compare=False)  # its message, once encoded


_I = np.int32


class ItemUpdate:
    """A batch's effect on the item side, before it is split by owner and applied once.

    Items are named once, in ``ids``; the parts refer to them by position:

    * ``grads``: the MF gradients (their own item ids);
    * popularity: ``pop_idx`` items gain ``pop_w`` positive weight, kept at reference ``pop_ref``;
    * co-occurrence: ``count_idx`` items gain ``count_w`` positives; row ``pair_a`` gains
      ``pair_w`` at neighbour ``pair_b`` (the row belongs to ``pair_a``'s owner).
    """

    __slots__ = ("grads", "ids", "_pos", "pop_ref", "pop_idx", "pop_w", "count_idx", "count_w", "pair_a",
                 "pair_b", "pair_w")

    def __init__(self, grads: ItemGradients, ids: list[str] | None = None) -> None:
        self.grads = grads
        self.ids: list[str] = list(ids or [])
        self._pos: dict[str, int] | None = None  # built when an id is first looked up
        self.pop_ref = 0.0
        self.pop_idx, self.pop_w = np.zeros(0, dtype=_I), np.zeros(0)
        self.count_idx, self.count_w = np.zeros(0, dtype=_I), np.zeros(0)
        self.pair_a, self.pair_b, self.pair_w = np.zeros(0, dtype=_I), np.zeros(0, dtype=_I), np.zeros(0)

    @classmethod
    def empty(cls, n_factors: int) -> "ItemUpdate":
        return cls(ItemGradients([], np.zeros((0, n_factors + 2), dtype=F32), np.zeros(0, dtype=F32), np.zeros(0)))

    def __bool__(self) -> bool:
        return bool(len(self.grads) or len(self.pop_idx) or len(self.count_idx) or len(self.pair_a))

    def index(self, items: Sequence[str]) -> np.ndarray:
        """Positions of ``items`` in ``ids`` (new ones appended)."""
        if self._pos is None:
            self._pos = {i: n for n, i in enumerate(self.ids)}
        pos = self._pos
        for i in items:
            if i not in pos:
                pos[i] = len(self.ids)
                self.ids.append(i)
        return np.fromiter(map(pos.__getitem__, items), dtype=_I, count=len(items))

    def add_pairs(self, a: Sequence[str], b: Sequence[str], w: Sequence[float]) -> None:
        self.add_pair_rows(self.index(a), self.index(b), np.asarray(w, dtype=np.float64))

    def add_pair_rows(self, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> None:
        """Pairs by position in ``ids`` (:meth:`index`)."""
        self.pair_a = np.concatenate([self.pair_a, np.asarray(a, dtype=_I)])
        self.pair_b = np.concatenate([self.pair_b, np.asarray(b, dtype=_I)])
        self.pair_w = np.concatenate([self.pair_w, np.asarray(w, dtype=np.float64)])

    def add_counts(self, items: Sequence[str], w: Sequence[float]) -> None:
        self.count_idx = np.concatenate([self.count_idx, self.index(items)])
        self.count_w = np.concatenate([self.count_w, np.asarray(w, dtype=np.float64)])

    def add_popularity(self, items: Sequence[str], w: Sequence[float], ref: float) -> None:
        self.pop_idx = np.concatenate([self.pop_idx, self.index(items)])
        self.pop_w = np.concatenate([self.pop_w, np.asarray(w, dtype=np.float64)])
        self.pop_ref = float(ref)

    def names(self, idx: np.ndarray) -> list[str]:
        ids = self.ids
        return [ids[j] for j in idx.tolist()]

    def split(self, partitions: int) -> dict[int, "ItemUpdate"]:
        """The update grouped by the owner partition of each changed item; each part names only
        the items it refers to."""
        if partitions == 1:
            return {0: self} if self else {}
        owner = np.array([_partition(i, partitions) for i in self.ids], dtype=np.int64)
        parts: dict[int, ItemUpdate] = {}
        grads = self.grads.split(partitions)
        for p in sorted(set(grads) | set(np.unique(owner).tolist())):
            m_pop, m_count, m_pair = owner[self.pop_idx] == p, owner[self.count_idx] == p, owner[self.pair_a] == p
            used = np.unique(np.concatenate([self.pop_idx[m_pop], self.count_idx[m_count], self.pair_a[m_pair],
                                             self.pair_b[m_pair]])).astype(np.int64)
            remap = np.full(len(self.ids), -1, dtype=_I)
            remap[used] = np.arange(len(used), dtype=_I)
            ids = self.ids
            u = ItemUpdate(grads.get(p, ItemUpdate.empty(self.grads.grad.shape[1] - 2).grads),
                           [ids[j] for j in used.tolist()])
            u.pop_ref = self.pop_ref
            u.pop_idx, u.pop_w = remap[self.pop_idx[m_pop]], self.pop_w[m_pop]
            u.count_idx, u.count_w = remap[self.count_idx[m_count]], self.count_w[m_count]
            u.pair_a, u.pair_b, u.pair_w = remap[self.pair_a[m_pair]], remap[self.pair_b[m_pair]], self.pair_w[m_pair]
            if u:
                parts[p] = u
        return parts


class ItemTable:
    """Every item's row: the MF part (:class:`~stream.models.sharded.ShardedMF`), co-occurrence
    (:class:`~stream.models.cooccurrence.NeighbourTable`) and popularity
    (:class:`~stream.models.popularity.ItemPopularity`), aligned on one item index.
    """

    #: A row that a neighbour key made before its item's own row arrived has this id prefix
    #: until then (:meth:`rows_of_keys`): it is never served, sampled or sent anywhere.
    UNNAMED = "\x00unnamed:"

    def __init__(self, params: HybridParams) -> None:
        self.params = params
        self.mf = ShardedMF(params.mf_params)
        self.cooc = NeighbourTable(params.cooc.max_neighbours)
        self.pop = ItemPopularity(params.popularity_half_life)
        self.keys = np.zeros(0, dtype=np.int64)  # row -> item_key
        self._sorted: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # keys, rows
        self._recent: tuple[np.ndarray, np.ndarray] = self._sorted  # the same, of rows added since
        self.unnamed: dict[int, int] = {}  # row -> key of rows made from a neighbour key only
        self._unnamed_rows: dict[int, int] = {}  # the same, key -> row
        self._named: np.ndarray | None = None  # named() while the unnamed rows do not change
        self._n_keys = 0  # rows whose key is registered

    @property
    def n_items(self) -> int:
        return self.mf.n_items

    @property
    def item_ids(self) -> list[str]:
        return self.mf.item_ids

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``item_ids``; unknown items get rows (MF: their seeded vector; the rest empty)."""
        if self.unnamed:
            self._name(item_ids)
        rows = self.mf.item_rows(item_ids)
        n = self.mf.n_items
        if n > self._n_keys:  # rows the MF part made (events' items, every id passes here first)
            self._register(self._n_keys, [item_key(i) for i in self.mf.item_ids[self._n_keys:n]])
        self.cooc.grow(n)
        self.pop.grow(n)
        return rows

    def _register(self, first: int, keys: list[int]) -> None:
        """Keys of the new rows from ``first`` on."""
        n = first + len(keys)
        if len(self.keys) < n:
            grown = np.zeros(max(n, 2 * len(self.keys), 8), dtype=np.int64)
            grown[: len(self.keys)] = self.keys
            self.keys = grown
        self.keys[first:n] = keys
        self._n_keys = n
        start = n - len(self._recent[0]) - len(keys)  # the first row not in the main index
        if n - start > max(1024, n // 16):
            start = 0
        order = np.argsort(self.keys[start:n], kind="stable")
        index = (self.keys[start:n][order], order.astype(np.int64) + start)
        if start == 0:
            self._sorted, self._recent = index, (np.zeros(0, np.int64), np.zeros(0, np.int64))
        else:
            self._recent = index

    def rows_of_keys(self, keys: np.ndarray, create: bool = True) -> np.ndarray:
        """Rows of item keys (a published row's neighbours). A key of an item this table has not
        heard of yet gets a row of its own, unnamed until the item's own row (or event) names it;
        until then :meth:`named` is False for it. ``create=False``: -1 for such keys instead."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.full(len(keys), -1, dtype=np.int64)
        for sk, sr in (self._sorted, self._recent):
            if len(sk) and len(keys):
                at = np.minimum(np.searchsorted(sk, keys), len(sk) - 1)
                hit = sk[at] == keys
                out[hit] = sr[at[hit]]
        new = np.flatnonzero(out < 0)
        if len(new) and create:
            fresh = np.unique(keys[new]).tolist()
            self.rows([])  # every row the MF part made so far has its key
            first = self.mf.n_items
            index = self.mf.model._items
            placeholders = []
            for k in fresh:  # an event's id could be anything, this prefix too: never reuse a row
                pid = f"{self.UNNAMED}{k:016x}"
                while index.get(pid) >= 0:
                    pid += "'"
                placeholders.append(pid)
            rows = self.mf.item_rows(placeholders)
            if self.mf.n_items - first != len(fresh):
                raise RuntimeError(f"ItemTable.rows_of_keys: {len(fresh)} new rows expected, "
                                   f"{self.mf.n_items - first} made")
            self._register(first, fresh)
            self.cooc.grow(self.mf.n_items)
            self.pop.grow(self.mf.n_items)
            self.mf.model._draw[rows] = 0.0  # never drawn as a negative while unnamed
            self.unnamed.update(zip(rows.tolist(), fresh))
            self._unnamed_rows.update(zip(fresh, rows.tolist()))
            self._named = None
            by_key = dict(zip(fresh, rows.tolist()))
            out[new] = [by_key[k] for k in keys[new].tolist()]
        return out

    def _name(self, item_ids: Sequence[str]) -> None:
        """Unnamed rows whose item now shows up by id take its id (and, while no owner wrote the
        row, the first vector of that id: the one every other process starts it from)."""
        index = self.mf.model._items
        for item in item_ids:
            if index.get(item) >= 0:
                continue
            r = self._unnamed_rows.pop(item_key(item), None)
            if r is None:
                continue
            index.rename(index.ids[r], item)
            del self.unnamed[r]
            self._named = None
            model = self.mf.model
            model._draw[r] = (model._pop[r] + 1.0) ** model.sampling_alpha
            if self.mf.versions()[r] == 0:
                model._Q[r] = self.mf.start_vectors([item])[0]
                model._bi[r] = 0.0

    def named(self) -> np.ndarray | None:
        """Rows that may be served (None: all of them); the unnamed ones are False."""
        if not self.unnamed:
            return None
        if self._named is None or len(self._named) != self.n_items:
            ok = np.ones(self.n_items, dtype=bool)
            ok[list(self.unnamed)] = False
            self._named = ok
        return self._named

    def get(self, item_id: str) -> int:
        """The row of a known item, -1 for an unknown one (nothing is added)."""
        return self.mf.model._items.get(item_id)

    def known_rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """:meth:`get` of many items at once."""
        return self.mf.model._items.get_many(item_ids)

    # -- the owner ---------------------------------------------------------------
    def apply(self, update: ItemUpdate, now: float) -> list[int]:
        """As the owner of the update's items: apply it once; returns the changed rows, sorted."""
        changed: set[int] = set()
        if len(update.grads):
            self.rows(update.grads.item_ids)
            changed.update(self.mf.apply_gradients(update.grads, now).tolist())
        touched: set[int] = set()
        if len(update.pop_idx) or len(update.count_idx) or len(update.pair_a):
            rows = self.rows(update.ids)  # position in the update's id table -> item row
            if len(update.pop_idx):
                uniq, inv = np.unique(rows[update.pop_idx], return_inverse=True)
                self.pop.add(uniq, np.bincount(inv, weights=update.pop_w, minlength=len(uniq)), update.pop_ref)
                touched.update(uniq.tolist())
            if len(update.count_idx) or len(update.pair_a):
                touched.update(self.cooc.add(rows[update.pair_a], rows[update.pair_b], update.pair_w,
                                             rows[update.count_idx], update.count_w))
        extra = np.array(sorted(touched - changed), dtype=np.int64)
        if len(extra):
            self.mf.touch(extra, now)
        return sorted(changed | touched)

    def apply_many(self, updates: Sequence[ItemUpdate], now: float) -> list[int]:
        """As the owner: apply several updates in order, each MF step on its own (Adagrad steps do
        not add up), their popularity and co-occurrence counts merged once (sums do); the
        changed rows, sorted."""
        if len(updates) == 1:
            return self.apply(updates[0], now)
        changed: set[int] = set()
        for u in updates:
            if len(u.grads):
                self.rows(u.grads.item_ids)
                changed.update(self.mf.apply_gradients(u.grads, now).tolist())
        touched: set[int] = set()
        a, b, w, cr, cw = [], [], [], [], []
        for u in updates:
            if not (len(u.pop_idx) or len(u.count_idx) or len(u.pair_a)):
                continue
            rows = self.rows(u.ids)
            if len(u.pop_idx):
                uniq, inv = np.unique(rows[u.pop_idx], return_inverse=True)
                self.pop.add(uniq, np.bincount(inv, weights=u.pop_w, minlength=len(uniq)), u.pop_ref)
                touched.update(uniq.tolist())
            a.append(rows[u.pair_a])
            b.append(rows[u.pair_b])
            w.append(u.pair_w)
            cr.append(rows[u.count_idx])
            cw.append(u.count_w)
        if a:
            touched.update(self.cooc.add(np.concatenate(a), np.concatenate(b), np.concatenate(w), np.concatenate(cr),
                                         np.concatenate(cw)))
        extra = np.array(sorted(touched - changed), dtype=np.int64)
        if len(extra):
            self.mf.touch(extra, now)
        return sorted(changed | touched)

    def init_item(self, item_id: str, like: Sequence[str], now: float) -> int | None:
        """As the owner: start a new item's MF row from the mean of ``like`` (items sharing its
        categories); the row, or None when it has a row already or none of ``like`` has one."""
        self.rows([item_id])
        state = self.mf.init_item(item_id, like, now)
        return None if state is None else self.get(item_id)

    def row(self, r: int) -> ItemRow:
        return self.rows_at([r])[0]

    def rows_at(self, rows) -> list[ItemRow]:
        """The rows at these positions, as their owner publishes them (each array a copy of the table's)."""
        rs = np.asarray(rows, dtype=np.int64)
        if not len(rs):
            return []
        ids = self.mf.item_ids
        states = self.mf.item_states(rs)
        lengths = self.cooc.length[rs].tolist()
        width = max(lengths)
        cols = self.cooc.cols[rs, :width]
        keys = self.keys[np.where(cols >= 0, cols, 0)]
        vals = self.cooc.vals[rs, :width].copy()
        n = self.cooc.n[rs].tolist()
        pop, ref = self.pop.values[rs].tolist(), self.pop.refs[rs].tolist()
        return [ItemRow(ids[r], states[j], n[j], keys[j, :m], vals[j, :m], pop[j], ref[j])
                for j, (r, m) in enumerate(zip(rs.tolist(), lengths))]

    def neighbours(self, r: int) -> tuple[list[str], np.ndarray]:
        """Row ``r``'s co-occurrence neighbours by id (sorted by row) and their counts."""
        cols, vals = self.cooc.row(r)
        ids = self.mf.item_ids
        return [ids[c] for c in cols.tolist()], vals

    # -- a copy ------------------------------------------------------------------
    def load_row(self, row: ItemRow, force: bool = False) -> bool:
        """Take a row published by its owner; False (nothing changed) when it is not newer.
        ``force``: take it whatever its version (an owner taking over its partition's rows)."""
        r = int(self.rows([row.item_id])[0])
        if not self.mf.load_item(row.mf, force=force):
            return False
        self.cooc.set_row(r, self.rows_of_keys(row.neighbour_keys), np.asarray(row.counts, dtype=np.float32), row.n)
        self.pop.set_row(r, row.popularity, row.popularity_ref)
        return True
