"""Online implicit-feedback matrix factorization, vectorised over micro-batches (NumPy only)."""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from stream.models._kernels import F32 as _F32
from stream.models._kernels import adagrad_rows as _adagrad_rows
from stream.models._kernels import collapse_repeats as _collapse_repeats
from stream.models._kernels import merge_rows as _merge_rows
from stream.models._kernels import run_starts as _run_starts
from stream.models._kernels import sigmoid as _sigmoid
from stream.models.base import IdIndex, OnlineModel, SeenItems, grow

__all__ = ["OnlineMF"]


class OnlineMF(OnlineModel):
    """Online matrix factorization for implicit feedback (weighted logistic loss).

    The score of user ``u`` for item ``i`` is ``b_u + b_i + p_u . q_i``. Each event is
    a weighted example: ``weight > 0`` a positive (click; dwell weighs more), ``weight < 0``
    an explicit negative of weight ``|weight|`` (skip), ``weight == 0`` only marks the item
    as seen. Each micro-batch also draws ``n_negatives`` items from the popularity-smoothed
    distribution ``(count_i + 1) ** sampling_alpha``; every positive in the batch is
    contrasted with all of them (weight ``negative_weight`` each), so the negative part is
    two small matrix products. Gradients are summed per row (scatter-add) and applied
    with a per-row Adagrad step. See docs/MODELS.md for the maths.

    Parameters
    ----------
    n_factors
        Length of the user and item vectors (float32).
    learning_rate
        Adagrad base step.
    l2
        L2 penalty applied once per batch to each row the batch touches.
    n_negatives
        Sampled negative items per micro-batch, shared by the batch's positives.
    negative_weight
        Weight of each (positive user, sampled item) negative pair.
    sampling_alpha
        Popularity smoothing exponent of the negative sampler (0 = uniform).
    init_scale
        Standard deviation of new factor rows.
    passes
        Gradient steps per micro-batch (each with fresh negatives); more passes learn
        faster from few events at a proportional cost.
    track_seen
        Remember each user's items so ``rank`` can leave them out.
    seed
        Seed of the one random generator (initial rows, negative samples).

    Examples
    --------
    >>> model = OnlineMF(n_factors=8, learning_rate=0.2, n_negatives=2, seed=42)
    >>> for _ in range(30):
    ...     model.learn_many(["ann", "bob", "ann", "bob"], ["jazz", "rock", "blues", "metal"])
    >>> model.learn_one("cat", "jazz")
    >>> model.rank("cat", k=1)  # cat shares ann's taste for jazz
    ['blues']
    >>> model.n_items, model.n_users
    (4, 3)

    References
    ----------
    Rendle & Freudenthaler, "Improving pairwise learning for item recommendation from
    implicit feedback", WSDM 2014 (popularity-aware sampling).
    Duchi, Hazan & Singer, "Adaptive subgradient methods", JMLR 2011 (Adagrad).
    """

    prefers_batches = True  # vectorised per micro-batch; one event at a time is mostly overhead

    _param_names = (
        "n_factors", "learning_rate", "l2", "n_negatives", "negative_weight",
        "sampling_alpha", "init_scale", "passes", "track_seen", "seed",
    )

    def __init__(
        self,
        n_factors: int = 64,
        learning_rate: float = 0.1,
        l2: float = 1e-4,
        n_negatives: int = 16,
        negative_weight: float = 0.05,
        sampling_alpha: float = 0.3,
        init_scale: float = 0.1,
        passes: int = 1,
        track_seen: bool = True,
        seed: int = 0,
    ) -> None:
        if n_factors <= 0:
            raise ValueError(f"OnlineMF: n_factors must be > 0, got {n_factors}")
        if passes < 1:
            raise ValueError(f"OnlineMF: passes must be >= 1, got {passes}")
        if n_negatives < 0:
            raise ValueError(f"OnlineMF: n_negatives must be >= 0, got {n_negatives}")
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.l2 = l2
        self.n_negatives = n_negatives
        self.negative_weight = negative_weight
        self.sampling_alpha = sampling_alpha
        self.init_scale = init_scale
        self.passes = passes
        self.track_seen = track_seen
        self.seed = seed
        self._init_state()

    def _init_state(self) -> None:
        k = self.n_factors
        self._rng = np.random.default_rng(self.seed)
        self._users = IdIndex()
        self._items = IdIndex()
        self._seen = SeenItems()
        # user rows extended, [p_u | b_u | 1] (k + 2 columns), so that with the item rows
        # extended per batch to [q_i | 1 | b_i] one dot product is the whole score
        # b_u + b_i + p_u . q_i. The item matrix stays (n, k) contiguous: ranking's
        # matrix-vector product over it is about 20 % slower on (n, k + 2) rows.
        self._P = np.zeros((0, k + 2), dtype=_F32)
        self._Q = np.zeros((0, k), dtype=_F32)
        self._bi = np.zeros(0, dtype=_F32)
        # Adagrad accumulators: one scalar per factor row, one per bias
        self._aP = np.zeros(0, dtype=_F32)
        self._aQ = np.zeros(0, dtype=_F32)
        self._abu = np.zeros(0, dtype=_F32)
        self._abi = np.zeros(0, dtype=_F32)
        self._pop = np.zeros(0, dtype=np.float64)  # positive weight per item, for sampling
        self._draw = np.zeros(0, dtype=np.float64)  # (pop + 1) ** sampling_alpha, kept current
        self._scratch = np.zeros(0, dtype=np.intp)  # per-user work array of collapse_repeats

    @property
    def n_users(self) -> int:
        return len(self._users)

    @property
    def user_ids(self) -> list[str]:
        return self._users.ids

    @property
    def item_factors(self) -> np.ndarray:
        """Item matrix, shape (n_items, n_factors), float32 (a view)."""
        return self._Q[: self.n_items]

    @property
    def user_factors(self) -> np.ndarray:
        return self._P[: self.n_users, : self.n_factors]

    @property
    def user_biases(self) -> np.ndarray:
        return self._P[: self.n_users, self.n_factors]

    @property
    def item_biases(self) -> np.ndarray:
        return self._bi[: self.n_items]

    # -- growth --------------------------------------------------------------
    def _grow_users(self, n_before: int) -> None:
        n, k = self.n_users, self.n_factors
        if n == n_before:
            return
        self._P, self._aP, self._abu, self._scratch = (
            grow(a, n) for a in (self._P, self._aP, self._abu, self._scratch))
        self._P[n_before:n, :k] = self._rng.normal(0.0, self.init_scale, (n - n_before, k))
        self._P[n_before:n, k + 1] = 1.0

    def _grow_items(self, n_before: int) -> None:
        n, k = self.n_items, self.n_factors
        if n == n_before:
            return
        self._Q, self._bi, self._aQ, self._abi, self._pop, self._draw = (
            grow(a, n) for a in (self._Q, self._bi, self._aQ, self._abi, self._pop, self._draw))
        self._Q[n_before:n] = self._rng.normal(0.0, self.init_scale, (n - n_before, k))
        self._draw[n_before:n] = 1.0  # (0 + 1) ** alpha

    # -- learning ------------------------------------------------------------
    def learn_many(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        weights: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
    ) -> None:
        """Learn from a micro-batch of events (``timestamps`` are accepted and unused)."""
        nu0, ni0 = self.n_users, self.n_items
        u, i, w = self._index_batch(user_ids, item_ids, weights, dtype=_F32)
        self._grow_users(nu0)
        self._grow_items(ni0)
        self.learn_indices(u, i, w)

    def learn_indices(self, u: np.ndarray, i: np.ndarray, w: np.ndarray) -> None:
        """Learn from events given as row indices of already-known users and items."""
        if self.track_seen:
            self._seen.add_many(u, i)
        batch = self._sorted_signal(u, i, w)
        if batch is None:
            return
        u, i, y, w, pos, all_pos = batch
        if pos.any():
            self.add_popularity(*self._positive_runs(i, w, pos, all_pos))
        for _ in range(self.passes):
            neg_items = self._sample_negatives() if pos.any() else np.empty(0, dtype=np.int64)
            rows, grad, ex_b, x = self._step(u, i, y, w, pos, all_pos, neg_items, self._P, self._aP, self._abu, self._scratch)
            self.apply_item_gradients(rows, grad, ex_b, x)

    def user_step(self, P: np.ndarray, aP: np.ndarray, abu: np.ndarray, u: np.ndarray, i: np.ndarray,
                  w: np.ndarray, rng: np.random.Generator | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The user half of a micro-batch step, for a learner whose item rows live elsewhere.

        ``P`` (n, k + 2) extended user rows ``[p_u | b_u | 1]``, ``aP`` and ``abu`` (n,)
        their Adagrad accumulators, all updated in place; ``u`` indexes them, ``i`` are
        item rows of this model, ``w`` signal weights. Returns the item half, not applied:
        ``(rows, grad, ex_b, positive_weight)``, unique item rows with their summed
        gradient rows, squared-bias sums and summed positive weight, to be applied once by
        the item's owner with :meth:`apply_item_gradients` and :meth:`add_popularity`.
        Every pass sees the item rows as they were (they change only at the owner). ``rng``
        draws the sampled negatives (default: the model's own generator); a learner that must
        give the same step wherever it runs seeds one from the batch.
        """
        k = self.n_factors
        empty = (np.empty(0, dtype=np.int64), np.zeros((0, k + 2), dtype=_F32), np.zeros(0, dtype=_F32),
                 np.zeros(0, dtype=np.float64))
        batch = self._sorted_signal(u, i, w)
        if batch is None:
            return empty
        u, i, y, w, pos, all_pos = batch
        scratch = np.zeros(len(P), dtype=np.intp)
        out = None
        for _ in range(self.passes):
            neg_items = self._sample_negatives(rng) if pos.any() else np.empty(0, dtype=np.int64)
            rows, grad, ex_b, _ = self._step(u, i, y, w, pos, all_pos, neg_items, P, aP, abu, scratch)
            out = (rows, grad, ex_b) if out is None else _merge_rows(*out, rows, grad, ex_b)
        rows, grad, ex_b = out
        pos_w = np.zeros(len(rows), dtype=np.float64)
        if pos.any():
            prow, pw = self._positive_runs(i, w, pos, all_pos)
            order = np.argsort(rows, kind="stable")
            pos_w[order[np.searchsorted(rows[order], prow)]] = pw
        return rows, grad, ex_b, pos_w

    def _sorted_signal(self, u: np.ndarray, i: np.ndarray, w: np.ndarray):
        """The events that teach something, sorted by item (then event order), with labels."""
        signal = w != 0
        if not signal.any():  # an empty batch too
            return None
        if not signal.all():
            u, i, w = u[signal], i[signal], w[signal]
        # (item row, user row, weight), sorted by item then event order: the item-side
        # scatter-add is one reduceat over runs. Sorting (item << 32 | position) is a plain
        # integer sort, about 3x faster than a stable argsort.
        key = (i.astype(np.int64) << 32) | np.arange(len(i), dtype=np.int64)
        key.sort()
        order = key & 0xFFFFFFFF
        u, i, w = u[order], key >> 32, w[order]
        pos = w > 0
        return u, i, pos.astype(_F32), np.abs(w), pos, bool(pos.all())

    @staticmethod
    def _positive_runs(i: np.ndarray, w: np.ndarray, pos: np.ndarray, all_pos: bool):
        """Unique item rows of the positives of a sorted batch and their summed weight."""
        ip = i if all_pos else i[pos]
        wp = (w if all_pos else w[pos]).astype(np.float64)
        starts = _run_starts(ip)
        return ip[starts], np.add.reduceat(wp, starts)

    def add_popularity(self, rows: np.ndarray, weights: np.ndarray) -> None:
        """Add positive weight to items (unique rows); the negative sampler follows it."""
        self._pop[rows] += weights
        self._draw[rows] = (self._pop[rows] + 1.0) ** self.sampling_alpha

    def _sample_negatives(self, rng: np.random.Generator | None = None) -> np.ndarray:
        if self.n_negatives == 0:
            return np.empty(0, dtype=np.int64)
        cdf = np.cumsum(self._draw[: self.n_items])
        draws = (self._rng if rng is None else rng).random(self.n_negatives) * cdf[-1]
        return np.minimum(np.searchsorted(cdf, draws, side="right"), self.n_items - 1)

    def _item_rows(self, rows: np.ndarray) -> np.ndarray:
        """Extended item rows ``[q_i | 1 | b_i]``, shape (len(rows), k + 2), float32 (a new array)."""
        k = self.n_factors
        x = np.empty((len(rows), k + 2), dtype=_F32)
        np.take(self._Q, rows, axis=0, out=x[:, :k])
        x[:, k] = 1.0
        np.take(self._bi, rows, out=x[:, k + 1])
        return x

    def _step(self, u, i, y, w, pos, all_pos, neg_items, P, aP, abu, scratch):
        """One gradient step on a batch sorted by item (see docs/MODELS.md): the user rows
        ``P`` are updated; the item half is returned as ``(rows, grad, ex_b, x)`` (x: the
        item rows the gradient was computed at)."""
        k, n = self.n_factors, len(i)
        starts = _run_starts(i)
        rows = i[starts]  # the batch's items, sorted, one row each
        Qr = self._item_rows(rows)
        run_lengths = np.empty_like(starts)
        np.subtract(starts[1:], starts[:-1], out=run_lengths[:-1])
        run_lengths[-1] = n - starts[-1]
        Pu, Qi = P.take(u, axis=0), np.repeat(Qr, run_lengths, axis=0)  # (n, k + 2) each
        g = np.einsum("ij,ij->i", Pu, Qi)  # the scores b_u + b_i + p_u . q_i
        _sigmoid(g)
        g -= y
        g *= w
        # gradient rows: users [g q_i + sum_j h_ij q_j | g + sum_j h_ij | -], items [g p_u | - | g]
        item_g = Pu * g[:, None]
        np.einsum("ij,ij->i", Pu[:, :k], Pu[:, :k], out=item_g[:, k])  # |p_u|^2, times g^2 below
        item_g[:, k] *= g * g
        Qi *= g[:, None]
        user_g, s = Qi, len(neg_items)
        if s:
            # shared sampled negatives: (n_pos, s) gradient matrix, label 0; h_ij = 0 where
            # the sampled item is the event's own item (a run, as the batch is sorted by item)
            Pn, Qn = (Pu if all_pos else Pu[pos]), self._item_rows(neg_items)
            # h = negative_weight * sigmoid(score) = negative_weight / (1 + exp(-score)):
            # three passes over (n_pos, s), the sign folded into the small Qn
            Gn = Pn @ np.negative(Qn).T
            with np.errstate(over="ignore"):  # exp(-score) = inf gives h = 0, as it should
                np.exp(Gn, out=Gn)
            Gn += 1.0
            np.divide(_F32(self.negative_weight), Gn, out=Gn)
            ipos = i if all_pos else i[pos]
            lo, hi = np.searchsorted(ipos, neg_items, "left"), np.searchsorted(ipos, neg_items, "right")
            for j in np.flatnonzero(hi > lo).tolist():  # at most n_negatives slices
                Gn[lo[j] : hi[j], j] = 0.0
            if all_pos:
                user_g += Gn @ Qn
            else:
                user_g[pos] += Gn @ Qn
            neg_g = Gn.T @ Pn  # (s, k + 2): [sum_i h_ij p_u | - | sum_i h_ij]
            neg_g[:, k] = np.einsum("ij,ij->i", neg_g[:, :k], neg_g[:, :k])
        # users: one Adagrad step per occurrence, repeated users summed first
        delta = _collapse_repeats(u, user_g, k, scratch)
        acc, acc_b = aP[u], abu[u]
        _adagrad_rows(Pu, acc, acc_b, user_g, k, k, self.learning_rate, self.l2, delta)
        P[u], aP[u], abu[u] = Pu, acc, acc_b
        # items: sum each run of the sorted batch, then add the sampled negatives' rows
        grad = np.add.reduceat(item_g, starts, axis=0)
        ex_b = np.add.reduceat(g * g, starts)
        if s:
            rows, grad, ex_b = _merge_rows(rows, grad, ex_b, neg_items, neg_g, np.square(neg_g[:, k + 1]))
        return rows, grad, ex_b, Qr

    def apply_item_gradients(self, rows: np.ndarray, grad: np.ndarray, ex_b: np.ndarray,
                             x: np.ndarray | None = None) -> None:
        """One Adagrad step on unique item ``rows`` with summed gradient rows ``grad`` (overwritten)
        and summed squared bias gradients ``ex_b``; ``x`` the rows' current extended values
        when the caller has them (a prefix of them is enough)."""
        k = self.n_factors
        # per-example squared norms minus the squared sum (factor, bias): the Adagrad correction
        delta = (grad[:, k] - np.einsum("ij,ij->i", grad[:, :k], grad[:, :k]), ex_b - np.square(grad[:, k + 1]))
        if x is None:
            x = self._item_rows(rows)
        elif len(x) != len(rows):
            x = np.concatenate([x, self._item_rows(rows[len(x) :])])
        acc, acc_b = self._aQ[rows], self._abi[rows]
        _adagrad_rows(x, acc, acc_b, grad, k, k + 1, self.learning_rate, self.l2, delta)
        self._Q[rows], self._bi[rows], self._aQ[rows], self._abi[rows] = x[:, :k], x[:, k + 1], acc, acc_b

    # -- inference -----------------------------------------------------------
    def scores(self, user_id: str) -> np.ndarray:
        """Score of every known item for ``user_id`` (float32, ``item_ids`` order).

        An unknown user gets the item biases (a learned popularity).
        """
        n = self.n_items
        u = self._users.get(user_id)
        if u < 0:
            return self._bi[:n].copy()
        scores = self._Q[:n] @ self._P[u, : self.n_factors]  # one BLAS matrix-vector product
        scores += self._bi[:n]
        return scores

    def predict_one(self, user_id: str, item_id: str) -> float:
        """Probability-like score ``sigmoid(b_u + b_i + p_u . q_i)``; 0.5-ish for unknown ids."""
        u, i, k = self._users.get(user_id), self._items.get(item_id), self.n_factors
        s = (self._P[u, k] if u >= 0 else 0.0) + (self._bi[i] if i >= 0 else 0.0)
        if u >= 0 and i >= 0:
            s += float(self._P[u, :k] @ self._Q[i])
        return float(_sigmoid(np.array([s]))[0])

    # -- state -----------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        nu, ni, k = self.n_users, self.n_items, self.n_factors
        indptr, indices = self._seen.to_arrays(nu)
        return {
            "user_ids": self._users.to_array(), "item_ids": self._items.to_array(),
            "P": self._P[:nu, :k].copy(), "Q": self._Q[:ni].copy(),
            "bu": self._P[:nu, k].copy(), "bi": self._bi[:ni].copy(),
            "aP": self._aP[:nu].copy(), "aQ": self._aQ[:ni].copy(),
            "abu": self._abu[:nu].copy(), "abi": self._abi[:ni].copy(),
            "pop": self._pop[:ni].copy(),
            "seen_indptr": indptr, "seen_indices": indices,
            "rng_state": np.array(json.dumps(self._rng.bit_generator.state)),
        }

    def _load_arrays(self, a: dict[str, np.ndarray]) -> None:
        self._users = IdIndex.from_array(a["user_ids"])
        self._items = IdIndex.from_array(a["item_ids"])
        nu, ni, k = len(self._users), len(self._items), self.n_factors
        for name, n in (("P", nu), ("Q", ni)):
            if a[name].shape != (n, k):
                raise ValueError(f"OnlineMF.from_state: {name} must have shape ({n}, {k}), got {a[name].shape}")
        self._P = np.column_stack([a["P"], a["bu"], np.ones(nu)]).astype(_F32)
        self._Q, self._bi = a["Q"].astype(_F32), a["bi"].astype(_F32)
        self._aP, self._aQ = a["aP"].astype(_F32), a["aQ"].astype(_F32)
        self._abu, self._abi = a["abu"].astype(_F32), a["abi"].astype(_F32)
        self._pop = a["pop"].astype(np.float64)
        self._draw = (self._pop + 1.0) ** self.sampling_alpha
        self._scratch = np.zeros(nu, dtype=np.intp)
        self._seen = SeenItems.from_arrays(a["seen_indptr"], a["seen_indices"])
        self._rng.bit_generator.state = json.loads(str(a["rng_state"]))
