"""A user's seen items: the items not to recommend them again, each with its last event time.

Kept by item key (:func:`stream.models.items.item_key`, stable across processes), as two
arrays sorted by key: a user's whole set is two NumPy arrays to load, to store and to look
rows up for (one vectorised call for every user of a batch), not a Python set of strings.
What a batch adds is held apart (a small dict) until the set is merged, capped or stored.

The cap forgets the oldest items first (ties: the lower key; the sorted-set state before it broke
ties by the lower item id).

Examples
--------
>>> seen = Seen.of({"a": 1.0, "b": 2.0})
>>> "a" in seen, "c" in seen
(True, False)
>>> later = seen.copy()
>>> later.add("c", 3.0)
>>> len(later), len(seen), "c" in later
(3, 2, True)
>>> later.cap(2)
1
>>> "a" in later, "b" in later, "c" in later
(False, True, True)
"""

from __future__ import annotations

import numpy as np

from stream.models.items import item_key

__all__ = ["Seen"]

_EMPTY_K = np.zeros(0, dtype=np.int64)
_EMPTY_T = np.zeros(0, dtype=np.float64)


class Seen:
    """Item keys -> last event time (see the module docstring). Arrays handed in are never
    changed in place (copies share them)."""

    __slots__ = ("_keys", "_ts", "_added")

    def __init__(self, keys: np.ndarray | None = None, ts: np.ndarray | None = None) -> None:
        self._keys = _EMPTY_K if keys is None else keys  # sorted, unique
        self._ts = _EMPTY_T if ts is None else ts
        self._added: dict[int, float] = {}

    @classmethod
    def of(cls, items: dict[str, float]) -> "Seen":
        """From item ids and times (tests, offline tools)."""
        seen = cls()
        for item, ts in items.items():
            seen.add(item, ts)
        seen._merge()
        return seen

    @classmethod
    def from_arrays(cls, keys: np.ndarray, ts: np.ndarray) -> "Seen":
        """From stored arrays (keys sorted and unique, as :meth:`arrays` gives them)."""
        if len(keys) != len(ts):
            raise ValueError(f"Seen: {len(keys)} keys and {len(ts)} times: must be as many")
        if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
            raise ValueError("Seen: the stored keys must be sorted and unique")
        return cls(keys, ts)

    def copy(self) -> "Seen":
        out = Seen(self._keys, self._ts)
        out._added = dict(self._added)
        return out

    # -- reading ----------------------------------------------------------------------
    def contains_key(self, key: int) -> bool:
        if key in self._added:
            return True
        keys = self._keys
        at = int(np.searchsorted(keys, key))
        return at < len(keys) and int(keys[at]) == key

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and self.contains_key(item_key(item_id))

    def __len__(self) -> int:
        self._merge()
        return len(self._keys)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys sorted, last event times), the batch's additions merged in."""
        self._merge()
        return self._keys, self._ts

    def keys(self) -> np.ndarray:
        return self.arrays()[0]

    def parts(self) -> tuple[np.ndarray, list[int]]:
        """The keys without merging: the stored sorted array (shared by copies: the same object
        for every copy made of one record) and the keys added since (possibly overlapping it)."""
        return self._keys, list(self._added)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Seen):
            return NotImplemented
        (a, ta), (b, tb) = self.arrays(), other.arrays()
        return np.array_equal(a, b) and np.array_equal(ta, tb)

    def __repr__(self) -> str:
        return f"Seen({len(self)} items)"

    # -- changing ---------------------------------------------------------------------
    def add(self, item_id: str, ts: float) -> None:
        """The user saw ``item_id`` at ``ts`` (a later time replaces an earlier one)."""
        self._added[item_key(item_id)] = float(ts)

    def cap(self, limit: int) -> int:
        """Forget the oldest items past ``limit`` (ties: the lower key first); returns how many."""
        if len(self._keys) + len(self._added) <= limit:
            return 0
        keys, ts = self.arrays()
        extra = len(keys) - limit
        if extra <= 0:
            return 0
        keep = np.sort(np.lexsort((keys, ts))[extra:])
        self._keys, self._ts = keys[keep], ts[keep]
        return extra

    def _merge(self) -> None:
        if not self._added:
            return
        added = self._added
        self._added = {}
        keys, ts = self._keys, self._ts
        if len(added) == 1:  # the usual case: one item a batch, inserted by slicing
            (key, t), = added.items()
            at = int(np.searchsorted(keys, key))
            if at < len(keys) and keys[at] == key:
                ts = ts.copy()
                ts[at] = t
                self._ts = ts
            else:
                self._keys = np.concatenate((keys[:at], np.array([key], dtype=np.int64), keys[at:]))
                self._ts = np.concatenate((ts[:at], np.array([t]), ts[at:]))
            return
        added = sorted(added.items())
        new_k = np.fromiter((k for k, _ in added), dtype=np.int64, count=len(added))
        new_t = np.fromiter((t for _, t in added), dtype=np.float64, count=len(added))
        at = np.searchsorted(keys, new_k)
        known = np.zeros(len(new_k), dtype=bool)
        inside = at < len(keys)
        known[inside] = keys[at[inside]] == new_k[inside]
        if known.any():  # seen again: the later time (a copy: the stored arrays are shared)
            ts = ts.copy()
            ts[at[known]] = new_t[known]
        if not known.all():  # the new ones go in at their places (np.insert, without its overhead)
            place = at[~known] + np.arange(int((~known).sum()))
            old = np.ones(len(keys) + len(place), dtype=bool)
            old[place] = False
            out_k = np.empty(len(old), dtype=np.int64)
            out_t = np.empty(len(old))
            out_k[place], out_t[place] = new_k[~known], new_t[~known]
            out_k[old], out_t[old] = keys, ts
            keys, ts = out_k, out_t
        self._keys, self._ts = keys, ts
