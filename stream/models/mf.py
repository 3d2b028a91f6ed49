"""Online implicit-feedback matrix factorization, vectorised over micro-batches (NumPy only)."""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from stream.models._kernels import F32 as _F32
from stream.models._kernels import segment_sum as _segment_sum
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
        self._P = np.zeros((0, k), dtype=_F32)  # user factors
        self._Q = np.zeros((0, k), dtype=_F32)  # item factors
        self._bu = np.zeros(0, dtype=_F32)
        self._bi = np.zeros(0, dtype=_F32)
        # Adagrad accumulators: one scalar per factor row, one per bias
        self._aP = np.zeros(0, dtype=_F32)
        self._aQ = np.zeros(0, dtype=_F32)
        self._abu = np.zeros(0, dtype=_F32)
        self._abi = np.zeros(0, dtype=_F32)
        self._pop = np.zeros(0, dtype=np.float64)  # positive weight per item, for sampling

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
        return self._P[: self.n_users]

    # -- growth --------------------------------------------------------------
    def _grow_users(self, n_before: int) -> None:
        n = self.n_users
        if n == n_before:
            return
        self._P = grow(self._P, n)
        for name in ("_bu", "_aP", "_abu"):
            setattr(self, name, grow(getattr(self, name), n))
        self._P[n_before:n] = self._rng.normal(0.0, self.init_scale, (n - n_before, self.n_factors))

    def _grow_items(self, n_before: int) -> None:
        n = self.n_items
        if n == n_before:
            return
        self._Q = grow(self._Q, n)
        for name in ("_bi", "_aQ", "_abi", "_pop"):
            setattr(self, name, grow(getattr(self, name), n))
        self._Q[n_before:n] = self._rng.normal(0.0, self.init_scale, (n - n_before, self.n_factors))

    # -- learning ------------------------------------------------------------
    def learn_many(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        weights: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
    ) -> None:
        """Learn from a micro-batch of events (``timestamps`` are accepted and unused)."""
        if len(user_ids) != len(item_ids):
            raise ValueError(
                f"OnlineMF.learn_many: user_ids and item_ids must have the same length, "
                f"got {len(user_ids)} and {len(item_ids)}"
            )
        nu0, ni0 = self.n_users, self.n_items
        u = self._users.add_many(user_ids)
        i = self._items.add_many(item_ids)
        self._grow_users(nu0)
        self._grow_items(ni0)
        w = np.ones(len(u), dtype=_F32) if weights is None else np.array(weights, dtype=_F32)
        if w.shape != u.shape:
            raise ValueError(f"OnlineMF.learn_many: weights must have one value per event, got shape {w.shape}")
        self.learn_indices(u, i, w)

    def learn_indices(self, u: np.ndarray, i: np.ndarray, w: np.ndarray) -> None:
        """Learn from events given as row indices of already-known users and items."""
        if self.track_seen:
            self._seen.add_many(u, i)
        signal = w != 0
        if not signal.any():
            return
        # (user row, item row, weight), grouped by user: the user-side scatter-add needs no sort
        by_user = np.argsort(u[signal], kind="stable")
        u, i, w = u[signal][by_user], i[signal][by_user], w[signal][by_user]
        y = (w > 0).astype(_F32)
        pos = w > 0
        np.add.at(self._pop, i[pos], w[pos].astype(np.float64))
        w = np.abs(w)
        for _ in range(self.passes):
            neg_items = self._sample_negatives() if pos.any() else np.empty(0, dtype=np.int64)
            self._step(u, i, y, w, pos, neg_items)

    def _sample_negatives(self) -> np.ndarray:
        if self.n_negatives == 0:
            return np.empty(0, dtype=np.int64)
        weights = (self._pop[: self.n_items] + 1.0) ** self.sampling_alpha
        cdf = np.cumsum(weights)
        draws = self._rng.random(self.n_negatives) * cdf[-1]
        return np.minimum(np.searchsorted(cdf, draws, side="right"), self.n_items - 1)

    def _step(self, u, i, y, w, pos, neg_items) -> None:
        P, Q, bu, bi = self._P, self._Q, self._bu, self._bi
        k = self.n_factors
        # direct pairs, one per event: (user row, item row, label, weight)
        Pu, Qi = P[u], Q[i]
        g = w * (_sigmoid(bu[u] + bi[i] + np.einsum("ij,ij->i", Pu, Qi)) - y)
        # one gradient row per example, columns: factor gradient (k), bias gradient,
        # then the squared norms Adagrad accumulates per example: (n, k + 3)
        n, s = len(i), len(neg_items)
        user_g = np.empty((n, k + 3), dtype=_F32)
        np.multiply(g[:, None], Qi, out=user_g[:, :k])
        user_g[:, k] = g
        item_g = np.empty((n + s, k + 3), dtype=_F32)  # event items, then sampled negatives
        np.multiply(g[:, None], Pu, out=item_g[:n, :k])
        item_g[:n, k] = g
        item_rows = i
        if s:
            # shared sampled negatives: (n_pos, n_neg) gradient matrix, label 0;
            # each positive's share is added to its own event row (same user)
            pos_u, pos_i = u[pos], i[pos]
            all_pos = bool(pos.all())
            Pn, Qn = (Pu if all_pos else Pu[pos]), Q[neg_items]
            Gn = Pn @ Qn.T
            Gn += bu[pos_u][:, None]
            Gn += bi[neg_items][None, :]
            Gn = _sigmoid(Gn)
            Gn *= _F32(self.negative_weight)
            Gn[neg_items[None, :] == pos_i[:, None]] = 0.0  # a sampled item that is the positive itself
            if all_pos:
                user_g[:, :k] += Gn @ Qn
                user_g[:, k] += Gn.sum(axis=1)
            else:
                user_g[pos, :k] += Gn @ Qn
                user_g[pos, k] += Gn.sum(axis=1)
            np.matmul(Gn.T, Pn, out=item_g[n:, :k])
            item_g[n:, k] = Gn.sum(axis=0)
            item_rows = np.concatenate([i, neg_items])
        for G in (user_g, item_g):
            np.einsum("ij,ij->i", G[:, :k], G[:, :k], out=G[:, k + 1])
            np.square(G[:, k], out=G[:, k + 2])
        self._adagrad(P, bu, self._aP, self._abu, *_segment_sum(u, user_g, presorted=True))
        self._adagrad(Q, bi, self._aQ, self._abi, *_segment_sum(item_rows, item_g))

    def _adagrad(self, X, b, aX, ab, rows, g) -> None:
        """One Adagrad step per touched row on its summed gradient.

        The accumulator grows by the row's per-example squared gradients (columns k+1,
        k+2, summed over its examples) plus the change the L2 term makes to the squared
        sum. With one example per row this is exactly ``mean((g + l2 x) ** 2)``, the
        sequential update; with n examples of a row in one batch the step is about
        sqrt(n) times one example's, as n sequential steps would be (summing the squared
        sum instead would shrink a bursty user's n events to a single step).
        """
        lr, l2, eps, inv_k = _F32(self.learning_rate), _F32(self.l2), _F32(1e-8), _F32(1.0 / self.n_factors)
        k = self.n_factors
        Xr, br = X[rows], b[rows]
        gx = g[:, :k]
        sum_sq = np.einsum("ij,ij->i", gx, gx)
        gx += l2 * Xr
        gb = g[:, k]
        sum_sqb = gb * gb
        gb += l2 * br
        acc = aX[rows] + np.maximum(g[:, k + 1] + np.einsum("ij,ij->i", gx, gx) - sum_sq, 0.0) * inv_k
        aX[rows] = acc
        accb = ab[rows] + np.maximum(g[:, k + 2] + gb * gb - sum_sqb, 0.0)
        ab[rows] = accb
        gx *= (lr / np.sqrt(acc + eps))[:, None]
        X[rows] = Xr - gx
        b[rows] = br - lr / np.sqrt(accb + eps) * gb

    # -- inference -----------------------------------------------------------
    def scores(self, user_id: str) -> np.ndarray:
        """Score of every known item for ``user_id`` (float32, ``item_ids`` order).

        An unknown user gets the item biases (a learned popularity).
        """
        n = self.n_items
        u = self._users.get(user_id)
        if u < 0:
            return self._bi[:n].copy()
        return self._Q[:n] @ self._P[u] + self._bi[:n]

    def predict_one(self, user_id: str, item_id: str) -> float:
        """Probability-like score ``sigmoid(b_u + b_i + p_u . q_i)``; 0.5-ish for unknown ids."""
        u, i = self._users.get(user_id), self._items.get(item_id)
        s = (self._bu[u] if u >= 0 else 0.0) + (self._bi[i] if i >= 0 else 0.0)
        if u >= 0 and i >= 0:
            s += float(self._P[u] @ self._Q[i])
        return float(_sigmoid(np.array([s]))[0])

    # -- state -----------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        nu, ni = self.n_users, self.n_items
        indptr, indices = self._seen.to_arrays(nu)
        return {
            "user_ids": self._users.to_array(), "item_ids": self._items.to_array(),
            "P": self._P[:nu].copy(), "Q": self._Q[:ni].copy(),
            "bu": self._bu[:nu].copy(), "bi": self._bi[:ni].copy(),
            "aP": self._aP[:nu].copy(), "aQ": self._aQ[:ni].copy(),
            "abu": self._abu[:nu].copy(), "abi": self._abi[:ni].copy(),
            "pop": self._pop[:ni].copy(),
            "seen_indptr": indptr, "seen_indices": indices,
            "rng_state": np.array(json.dumps(self._rng.bit_generator.state)),
        }

    def _load_arrays(self, a: dict[str, np.ndarray]) -> None:
        self._users = IdIndex.from_array(a["user_ids"])
        self._items = IdIndex.from_array(a["item_ids"])
        nu, ni = len(self._users), len(self._items)
        for name, n in (("P", nu), ("Q", ni)):
            if a[name].shape != (n, self.n_factors):
                raise ValueError(f"OnlineMF.from_state: {name} must have shape ({n}, {self.n_factors}), got {a[name].shape}")
        self._P, self._Q = a["P"].astype(_F32), a["Q"].astype(_F32)
        self._bu, self._bi = a["bu"].astype(_F32), a["bi"].astype(_F32)
        self._aP, self._aQ = a["aP"].astype(_F32), a["aQ"].astype(_F32)
        self._abu, self._abi = a["abu"].astype(_F32), a["abi"].astype(_F32)
        self._pop = a["pop"].astype(np.float64)
        self._seen = SeenItems.from_arrays(a["seen_indptr"], a["seen_indices"])
        self._rng.bit_generator.state = json.loads(str(a["rng_state"]))
