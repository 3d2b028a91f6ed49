"""Ranking: what a user is served, for trials, pushes and HTTP alike.

For a user with signal (a learned MF row, or positives in their history):

1. **the blend** (:mod:`stream.models.hybrid`: each part normalised, weighted) scores every item: the
   MF part from the user's row, co-occurrence from their recent positives (recency-weighted)
   against the item side's neighbour rows, popularity from the item side; their seen items
   are left out and the top ``n_candidates`` kept, in the blend's order (ties: the lower row);
2. **the segment re-ranker** (when configured) scores those candidates' features
   (:mod:`stream.models.rerank.features`, with the segment's popularity) with the segment's
   River layers; the user is served the layer's order, or the blend's while the segment's guard
   says so;
3. **diversity** (when ``EngineConfig.diversity`` λ > 0): MMR (:mod:`stream.models.diversity`)
   picks the ``k`` served items from that order's top ``max(3k, n_candidates)``, trading the
   score it was ordered by against the cosine of the items' MF rows; λ = 0 does nothing;
4. **exploration**: a stable share of lists gives its last slot to the best fresh item.

A user without signal gets their segment's trending items (the global ones fill a short list),
not diversified (no relevance to trade, and few of their items have learned MF rows).

Many users are ranked at once: each part is one matrix over (users, items), so a batch's
trials cost a few NumPy calls, not a Python loop per user.

Every served item can carry a machine-readable reason: ``because_you_liked`` (the history item
that adds most to its co-occurrence score), ``matches_your_taste`` (the MF part),
``popular_in_segment`` / ``popular`` (cold start), ``explore``.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from stream.engine.blend import Blend, View
from stream.engine.config import MODEL_NAMES, EngineConfig
from stream.engine.segpop import SegmentPopularity
from stream.models.base import top_k, top_many
from stream.models.diversity import mmr
from stream.models.items import ItemTable
from stream.models.rerank.features import raw_features, scaled
from stream.models.rerank.layers import SegmentLayers
from stream.state.base import SharedState, StateStore
from stream.state.seen import Seen

__all__ = ["View", "Candidates", "Ranked", "Ranking", "POOL_FACTOR"]

#: With diversity on, MMR picks a list of k from each warm user's top ``POOL_FACTOR·k`` candidates
#: at least (the re-ranker's ``n_candidates`` when larger).
POOL_FACTOR = 3


@dataclass
class Candidates:
    """A user's candidates as the re-ranker saw them (to learn from, and for the guard)."""

    segment: str
    rows: np.ndarray  # item rows, the blend's order
    X: np.ndarray  # scaled features (len(rows), len(COLUMNS))
    shared: np.ndarray  # shared layer logits
    seg: np.ndarray  # the segment layer's logits
    order: np.ndarray  # positions in rows, best first by the segment layer
    item_ids: list[str]  # the table's ids (rows -> ids)

    @property
    def ids(self) -> list[str]:
        ids = self.item_ids
        return [ids[r] for r in self.rows.tolist()]

    def position(self, row: int) -> int:
        """Where item row ``row`` is among the candidates (-1: not there)."""
        at = np.flatnonzero(self.rows == row)
        return int(at[0]) if len(at) else -1


@dataclass
class Ranked:
    """One user's list."""

    items: list[tuple[str, float]]  # served (item id, score), best first
    model: str  # MODEL_NAMES value
    glob: list[str]  # the blend's top-k (the guard's comparison)
    seg: list[str] | None  # the segment layer's top-k (None: no re-ranker for this user)
    explored: bool = False  # the last slot is a fresh item
    reasons: list[dict] | None = None
    candidates: Candidates | None = None
    experiment: str | None = None  # the experiment and variant it was ranked under (None: none)
    variant: str | None = None

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self.items]


class Ranking:
    """Ranks users against the item side (``table``) with the configured models."""

    def __init__(self, config: EngineConfig, table: ItemTable) -> None:
        self.config = config
        self.table = table
        self.blend = Blend(config, table)

    def blend_matrix(self, views: list[View], N: int) -> tuple[np.ndarray, dict, dict]:
        """:meth:`Blend.matrix` (the blend's scores of every item, and its parts' raw rows)."""
        return self.blend.matrix(views, N)

    async def rank(self, views: list[View], k: int, shared: SharedState, layers: SegmentLayers | None,
                   state: StateStore, reasons: bool = False) -> list[Ranked]:
        """Each view's list of ``k`` (see the module docstring)."""
        out: list[Ranked | None] = [None] * len(views)
        N = self.table.n_items
        hp = self.config.hybrid
        rr = self.config.rerank if layers is not None else None
        usable = [bool(N) and ((v.learned and hp.mf_weight) or (v.history and hp.cooccurrence_weight)
                               or (hp.popularity_weight and (v.learned or v.history))) for v in views]
        warm = [j for j, ok in enumerate(usable) if ok]
        if warm:
            wviews = [views[j] for j in warm]
            G, mf_rows, cooc_rows = self.blend_matrix(wviews, N)
            sizes = [max(int(rr.of(v.segment, "n_candidates")), k) if rr is not None else k for v in wviews]
            lam = self.config.diversity
            if lam:  # MMR picks k from a wider pool
                sizes = [max(size, POOL_FACTOR * k) for size in sizes]
            tops = self._top(G, wviews, sizes)
            pop = self.blend.popularity(N)
            cands = await self._rerank(wviews, tops, G, mf_rows, cooc_rows, pop, shared, layers, state) \
                if rr is not None else {}
            pools: list[tuple[np.ndarray, np.ndarray]] = []  # each warm view's served order: (rows, scores)
            cut = None if lam else k  # without MMR only the first k are served
            models: list[str] = []
            for n in range(len(warm)):
                top, c = tops[n], cands.get(n)
                if c is not None and _serving_segment(shared, c.segment):
                    pools.append((top[c.order[:cut]], c.seg[c.order[:cut]]))
                    models.append(MODEL_NAMES["rerank"])
                else:
                    pools.append((top[:cut], G[n][top[:cut]]))
                    models.append(MODEL_NAMES["hybrid"])
            picks = self._diversify(pools, k, lam) if lam else [slice(None)] * len(pools)
            fresh = None
            ids = self.table.item_ids
            for n, j in enumerate(warm):
                v, top, g, c = views[j], tops[n], G[n], cands.get(n)
                glob = [ids[r] for r in top[:k].tolist()]
                rows, scores = pools[n]
                at = picks[n]
                items = [(ids[r], float(s)) for r, s in zip(rows[at].tolist(), scores[at].tolist())]
                seg = [ids[r] for r in c.rows[c.order[:k]].tolist()] if c is not None else None
                explored = False
                if v.explore and len(items) == k and k > 1:
                    if fresh is None:
                        # the table may have grown while this ranking awaited the state: G has N columns
                        fresh = ((self.table.mf.positive_weight() < self.config.explore_max_positive_weight)
                                 & (self.table.mf.versions() > 0))[:N]
                    pick = self._explore(fresh, g, v.seen, items)
                    if pick is not None:
                        items = items[:-1] + [(ids[pick], float(g[pick]))]
                        explored = True
                out[j] = Ranked(items, models[n], glob, seg, explored, None, c)
            if reasons:
                self._reasons([out[j] for j in warm], wviews, [n in mf_rows for n in range(len(warm))])
        cold = [j for j in range(len(views)) if out[j] is None]
        if cold:
            await self._cold(views, cold, k, state, reasons, out)
        return out  # type: ignore[return-value]

    def _diversify(self, pools: list[tuple[np.ndarray, np.ndarray]], k: int, lam: float) -> list[np.ndarray]:
        """Each pool's MMR picks (positions into it, :func:`stream.models.diversity.mmr`), all
        pools at once: relevance the score it was ordered by, similarity the cosine of MF rows."""
        P = max((len(rows) for rows, _ in pools), default=0)
        R = np.full((len(pools), P), -np.inf)
        rows = np.zeros((len(pools), P), dtype=np.int64)
        for n, (r, s) in enumerate(pools):
            R[n, : len(r)], rows[n, : len(r)] = s, r
        valid = np.arange(P) < np.array([len(r) for r, _ in pools])[:, None]
        picked = mmr(R, self.table.mf.model.item_factors[rows], k, lam, valid)
        return [p[p >= 0] for p in picked]

    def _top(self, G: np.ndarray, views: list[View], sizes: list[int]) -> list[np.ndarray]:
        """Each view's top rows by its blend row, seen items left out, best first (ties: lower row).
        The seen items' cells of ``G`` are set to -inf (nothing reads them after)."""
        V, N = G.shape
        flat = self.blend.seen_cells(views, N)
        named = self.table.named()
        if len(flat):
            G.reshape(-1)[flat] = -np.inf
        if named is not None:  # rows known by a neighbour key only: no id to serve yet
            G[:, ~named[:N]] = -np.inf
        cols, valid = top_many(G, max(sizes))
        return [c[: min(m, size)] for c, m, size in zip(cols, valid.tolist(), sizes)]

    async def _rerank(self, views, tops, G, mf_rows, cooc_rows, pop, shared, layers: SegmentLayers,
                      state) -> dict[int, Candidates]:
        """The segment layers' scores of each warm view's candidates, per segment at once."""
        ids = self.table.item_ids
        by_seg: dict[str, list[int]] = {}
        for n, top in enumerate(tops):
            if len(top):
                by_seg.setdefault(views[n].segment, []).append(n)
        if not by_seg:
            return {}
        N = G.shape[1]
        wanted_rows = {}  # each segment's candidate rows, ascending, once each (a mask: no sort)
        for seg, ns in by_seg.items():
            mask = np.zeros(N, dtype=bool)
            mask[np.concatenate([tops[n] for n in ns])] = True
            wanted_rows[seg] = np.flatnonzero(mask)
        if not isinstance(state, SegmentPopularity):
            state = SegmentPopularity(state, 0.0, self.table)  # read every time
        seg_pop = await state.scores_at(wanted_rows)
        out = {}
        for seg, ns in by_seg.items():
            at = np.zeros(N)
            at[wanted_rows[seg]] = seg_pop[seg]
            groups: dict[int, list[int]] = {}  # the segment's views by candidate count
            for n in ns:
                groups.setdefault(len(tops[n]), []).append(n)
            for size, group in groups.items():
                rows = np.stack([tops[n] for n in group])  # (U, size)
                zeros = np.zeros(size)
                R = raw_features(np.stack([G[n][tops[n]] for n in group]),
                                 np.stack([mf_rows[n][tops[n]].astype(np.float64) if n in mf_rows else zeros
                                           for n in group]),
                                 np.stack([cooc_rows[n][tops[n]] if n in cooc_rows else zeros for n in group]),
                                 pop[rows], at[rows])
                X = scaled(R)
                shared_logits, seg_logits = layers.scores(seg, X.reshape(-1, X.shape[-1]))
                shared_logits = shared_logits.reshape(len(group), size)
                seg_logits = seg_logits.reshape(len(group), size)
                orders = np.argsort(-seg_logits, axis=1, kind="stable")  # ties keep the blend's order
                for m, n in enumerate(group):
                    out[n] = Candidates(seg, rows[m], X[m], shared_logits[m], seg_logits[m], orders[m], ids)
        return out

    def _explore(self, fresh: np.ndarray, g: np.ndarray, seen: Seen, items) -> int | None:
        """The best-scored fresh item (one with a row from its owner and little positive signal
        yet) not seen and not in the list; None when the list holds a fresh item already."""
        in_list = self.blend.rows([i for i, _ in items])
        if fresh[in_list].any():
            return None
        mask = fresh.copy()
        mask[in_list] = False
        rows = self.table.rows_of_keys(seen.keys(), create=False)
        mask[rows[(rows >= 0) & (rows < len(mask))]] = False
        cand = np.flatnonzero(mask)
        return int(cand[np.argmax(g[cand])]) if len(cand) else None

    def _reasons(self, ranked: list[Ranked], views: list[View], has_mf: list[bool]) -> None:
        """Every served item's reason, for many lists at once (set on each :class:`Ranked`)."""
        best = None
        if self.config.hybrid.cooccurrence_weight and any(v.history for v in views):
            user, hrows, hw = self.blend.histories([v.history for v in views])
            targets = np.full((len(ranked), max(len(r.items) for r in ranked)), -1, dtype=np.int64)
            for n, r in enumerate(ranked):
                targets[n, : len(r.items)] = self.blend.rows(r.ids)
            best = self.table.cooc.contributors_many(user, hrows, hw, targets, self.table.n_items,
                                                     self.config.hybrid.cooc.alpha)
        ids = self.table.item_ids
        best_lists = best.tolist() if best is not None else None
        for n, r in enumerate(ranked):
            out = []
            for j in range(len(r.items)):
                b = -1 if best_lists is None else best_lists[n][j]
                if r.explored and j == len(r.items) - 1:
                    out.append({"kind": "explore"})
                elif b >= 0:
                    out.append({"kind": "because_you_liked", "item_id": ids[b]})
                elif has_mf[n]:
                    out.append({"kind": "matches_your_taste"})
                else:
                    out.append({"kind": "popular"})
            r.reasons = out

    async def _cold(self, views, cold: list[int], k: int, state: StateStore, reasons: bool, out: list) -> None:
        """Segment popularity for users without signal, the global popularity filling a short list."""
        need: dict[str, int] = {}
        for j in cold:
            v = views[j]
            need[v.segment] = max(need.get(v.segment, 0), k + len(v.seen))
        tops = await state.segment_top(need)
        ids = self.table.item_ids
        global_top = None
        for j in cold:
            v = views[j]
            items = [(i, s) for i, s in tops.get(v.segment, []) if i not in v.seen][:k]
            why = [{"kind": "popular_in_segment", "segment": v.segment} for _ in items]
            if len(items) < k and len(ids):
                if global_top is None:
                    pop = self.blend.popularity(len(ids))
                    named = self.table.named()
                    if named is not None:  # rows known by a neighbour key only: no id to serve yet
                        pop = np.where(named, pop, -np.inf)
                    global_top = top_k(pop, min(len(ids), k + max(len(views[c].seen) for c in cold)))
                    global_top = global_top[np.isfinite(pop[global_top])]
                have = {i for i, _ in items}
                for r in global_top.tolist():
                    if len(items) >= k:
                        break
                    if ids[r] not in have and ids[r] not in v.seen:
                        items.append((ids[r], 0.0))
                        why.append({"kind": "popular"})
            out[j] = Ranked(items, MODEL_NAMES["cold"], [i for i, _ in items], None, False,
                            why if reasons else None, None)


def _serving_segment(shared: SharedState, segment: str) -> bool:
    """Whether a segment is served its re-ranker (its guard has not fallen back to the blend)."""
    guard = shared.guards.get(segment)
    return not guard or guard.get("serving", "segment") != "global"
