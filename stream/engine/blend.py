"""The blend of a ranking: every item scored for many users at once, each part one matrix over
(users, items) (:mod:`stream.models.hybrid`), and the cells of their seen items.

Each part is added with the factor its normalisation would scale it by and without its per-user
shift (:func:`stream.models.hybrid.scale`): the same order in every row, a pass over the matrix
fewer. :class:`~stream.engine.rank.Ranking` takes the top candidates from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

import numpy as np

from stream.engine.config import EngineConfig
from stream.models.hybrid import scale
from stream.models.items import ItemTable
from stream.models.sharded import UserState
from stream.state.seen import Seen

__all__ = ["View", "Blend"]


@dataclass
class View:
    """A user as one ranking sees them."""

    user_id: str
    segment: str
    row: UserState | None
    history: list[str]
    seen: Seen  # (item ids are taken too: tests, tools)
    explore: bool = False
    variant: tuple[str, str] | None = None  # (experiment, variant) the user is served under

    def __post_init__(self) -> None:
        if not isinstance(self.seen, Seen):
            self.seen = Seen.of({item: 0.0 for item in self.seen})

    @property
    def learned(self) -> bool:
        return self.row is not None and self.row.n > 0


class Blend:
    """The first stage of ranking against the item side (``table``), with the configured blend."""

    def __init__(self, config: EngineConfig, table: ItemTable) -> None:
        self.config = config
        self.table = table
        self._pop_part: tuple | None = None  # ((popularity version, N), weighted part, scores)

    def rows(self, items: Collection[str]) -> np.ndarray:
        """Rows of the known ones among ``items`` (C-speed lookups when all are known: the usual case)."""
        pos = self.table.mf.model._items._pos
        try:
            return np.fromiter(map(pos.__getitem__, items), dtype=np.int64, count=len(items))
        except KeyError:
            return np.array([pos[i] for i in items if i in pos], dtype=np.int64)

    def histories(self, histories: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every history's last ``history`` known items at once: (whose, item row, recency weight)."""
        cooc = self.config.hybrid.cooc
        lists = [h if cooc.history is None else h[-cooc.history:] for h in histories]
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        pos = self.table.mf.model._items._pos
        rows = np.array([pos.get(i, -1) for h in lists for i in h], dtype=np.int64)
        user = np.repeat(np.arange(len(lists)), lengths)
        age = np.repeat(np.cumsum(lengths), lengths) - 1 - np.arange(len(rows))
        keep = rows >= 0
        return user[keep], rows[keep], cooc.decay ** age[keep].astype(np.float64)

    def matrix(self, views: list[View], N: int) -> tuple[np.ndarray, dict, dict]:
        """The blend's scores of every item for each view (V, N) float32, and the MF and
        co-occurrence parts' raw rows per view index (absent when the part is not used for that
        view). Each part is added scaled as :func:`~stream.models.hybrid.normalise` scales it,
        without its shift (:func:`~stream.models.hybrid.scale`): the same order within each row."""
        hp = self.config.hybrid
        G = np.zeros((len(views), N), dtype=np.float32)
        mf_rows: dict[int, np.ndarray] = {}
        cooc_rows: dict[int, np.ndarray] = {}
        learned = [j for j, v in enumerate(views) if v.learned] if hp.mf_weight else []
        if learned:
            S = self.table.mf.score_many(np.stack([views[j].row.vector for j in learned]))
            a = (hp.mf_weight * scale(S, hp.normalise)).astype(np.float32)[:, None]
            if len(learned) == len(views):
                np.multiply(S, a, out=G)
            else:
                G[learned] = S * a
            mf_rows = {j: S[n] for n, j in enumerate(learned)}
        if hp.cooccurrence_weight:
            js = [j for j, v in enumerate(views) if v.history]
            if js:
                user, rows, w = self.histories([views[j].history for j in js])
                has = np.bincount(user, minlength=len(js)) > 0  # a history with no known item has no part
                if not has.all():
                    js = [j for j, h in zip(js, has.tolist()) if h]
                    user = (np.cumsum(has) - 1)[user]  # the users with a part, numbered again
                if js:
                    C = self.table.cooc.score_many(user, rows, w, len(js), N, hp.cooc.alpha)
                    cooc_rows = {j: C[n] for n, j in enumerate(js)}
                    if hp.normalise == "max":
                        # scores are >= 0, and 0 wherever a user's neighbours do not reach: the
                        # span is the maximum unless they reach every item (then min-max as usual)
                        reach = np.bincount(user, weights=self.table.cooc.length[rows], minlength=len(js))
                        a = C.max(axis=1)
                        full = np.flatnonzero(reach >= N)
                        a[full] -= C[full].min(axis=1)
                        a = hp.cooccurrence_weight * np.where(a > 0, 1.0 / np.where(a > 0, a, 1.0), 0.0)
                    else:
                        a = hp.cooccurrence_weight * scale(C, hp.normalise)
                    # C stays raw (a re-ranker feature); its scaled part in float32
                    part = np.multiply(C, a[:, None], out=np.empty(C.shape, dtype=np.float32), casting="unsafe")
                    if len(js) == len(views):
                        G += part
                    else:
                        G[js] += part
        if hp.popularity_weight:
            G += self.popularity_part(N)
        return G, mf_rows, cooc_rows

    def popularity_part(self, N: int) -> np.ndarray:
        """The popularity part's row (the same for every user), float32."""
        pop = self.table.pop
        key = (pop.version, N)
        if self._pop_part is None or self._pop_part[0] != key:
            p = pop.scores(N)
            self._pop_part = (key, (self.config.hybrid.popularity_weight * p * scale(p, self.config.hybrid.normalise)[0])
                              .astype(np.float32), p)
        return self._pop_part[1]

    def popularity(self, N: int) -> np.ndarray:
        """Every item's popularity score (float64), cached while the item side does not change."""
        self.popularity_part(N)
        return self._pop_part[2]

    def seen_cells(self, views: list[View], N: int) -> np.ndarray:
        """Flat (view, item row) positions of every view's seen items, in one look-up. A user's
        trials share their stored seen keys (looked up once), each with the few its batch added."""
        shared: dict[int, int] = {}  # id of a stored key array -> its place in ``bases``
        bases: list[np.ndarray] = []
        which, added, added_view = [], [], []
        for n, v in enumerate(views):
            base, extra = v.seen.parts()
            slot = shared.get(id(base))
            if slot is None:
                slot = shared[id(base)] = len(bases)
                bases.append(base)
            which.append(slot)
            added += extra
            added_view += [n] * len(extra)
        lengths = np.fromiter(map(len, bases), dtype=np.int64, count=len(bases))
        cells = []
        if lengths.sum():
            base_rows = self.table.rows_of_keys(np.concatenate(bases), create=False)
            starts = np.cumsum(lengths) - lengths
            which = np.asarray(which)
            per_view = lengths[which]
            view = np.repeat(np.arange(len(views)), per_view)
            at = np.repeat(starts[which], per_view) + (np.arange(per_view.sum()) - np.repeat(np.cumsum(per_view)
                                                                                            - per_view, per_view))
            cells.append((view, base_rows[at]))
        if added:
            cells.append((np.asarray(added_view), self.table.rows_of_keys(np.asarray(added, dtype=np.int64),
                                                                          create=False)))
        if not cells:
            return np.zeros(0, dtype=np.int64)
        view = np.concatenate([c[0] for c in cells])
        rows = np.concatenate([c[1] for c in cells])
        ok = (rows >= 0) & (rows < N)
        return view[ok] * N + rows[ok]
