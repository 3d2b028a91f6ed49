"""Incremental item-to-item co-occurrence (item-kNN, cosine), optionally recency-weighted."""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from stream.models.base import IdIndex, OnlineModel, SeenItems, grow

__all__ = ["Cooccurrence"]


class Cooccurrence(OnlineModel):
    """Item-kNN from co-occurring positives, updated one positive at a time.

    ``C[a, b]`` counts the users with positives on both ``a`` and ``b`` (when a user gets
    a positive on ``b``, it pairs with each of the user's earlier positives, or only the
    last ``window`` of them), ``n[a]`` counts positives on ``a``, and the similarity is
    the cosine ``C[a, b] / sqrt(n[a] n[b])`` (``alpha`` = 0.5; in general
    ``C[a, b] / (n[a] ** alpha * n[b] ** (1 - alpha))``, lower alpha favours popular
    neighbours). With ``pair_decay < 1`` a pair counts ``pair_decay ** (d - 1)`` where
    ``d`` is how many positives apart the two items are in the user's sequence. A user's score for item ``j`` is
    ``sum_h decay ** age(h) * sim(h, j)`` over the user's last ``history`` positives
    (age 0 = most recent). ``decay=1, history=None`` is plain item-kNN; the recency-weighted
    variant of the evaluation uses ``decay=0.7, history=30``.

    The co-occurrence matrix is dense float32 (n_items x n_items): fine up to a few
    tens of thousands of items; larger catalogues need a sparse or truncated variant.

    Parameters
    ----------
    decay
        Weight factor per step of age in the user's history (1 = no recency weighting).
    history
        Number of latest positives used for scoring (None = all).
    window
        Number of latest positives a new positive co-occurs with (None = all).
    pair_decay
        Weight factor per step of sequence distance of a co-occurring pair.
    alpha
        Exponent of the history item's count in the similarity denominator.
    track_seen
        Remember each user's items so ``rank`` can leave them out.

    Examples
    --------
    >>> knn = Cooccurrence()
    >>> knn.learn_many(["a", "a", "b", "b", "c"], ["x", "y", "x", "y", "x"])
    >>> knn.rank("c", k=1)
    ['y']
    """

    _param_names = ("decay", "history", "window", "pair_decay", "alpha", "track_seen")

    def __init__(
        self,
        decay: float = 1.0,
        history: int | None = None,
        window: int | None = None,
        pair_decay: float = 1.0,
        alpha: float = 0.5,
        track_seen: bool = True,
    ) -> None:
        for name, value in (("decay", decay), ("pair_decay", pair_decay)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"Cooccurrence: {name} must be in (0, 1], got {value}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Cooccurrence: alpha must be in [0, 1], got {alpha}")
        self.decay = decay
        self.history = history
        self.window = window
        self.pair_decay = pair_decay
        self.alpha = alpha
        self.track_seen = track_seen
        self._init_state()

    def _init_state(self) -> None:
        self._users = IdIndex()
        self._items = IdIndex()
        self._seen = SeenItems()
        self._C = np.zeros((0, 0), dtype=np.float32)
        self._n = np.zeros(0, dtype=np.float32)
        self._hist: dict[int, deque] = {}  # user row -> item rows of positives, oldest first
        # longest history any step needs; None (keep all) when either side wants all
        self._cap = None if self.history is None or self.window is None else max(self.history, self.window)

    def _grow_items(self) -> None:
        n = self.n_items
        if n > self._C.shape[0]:
            cap = grow(self._n, n).shape[0]
            C = np.zeros((cap, cap), dtype=np.float32)
            m = self._C.shape[0]
            C[:m, :m] = self._C
            self._C = C
            self._n = grow(self._n, n)

    def learn_many(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        weights: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
    ) -> None:
        """Add positives (weight > 0) in order; other events only mark items as seen."""
        u, i, w = self._index_batch(user_ids, item_ids, weights)
        self._grow_items()
        if self.track_seen:
            self._seen.add_many(u, i)
        # order matters (each positive pairs with the user's earlier ones): one step per positive
        for user, item in zip(u[w > 0].tolist(), i[w > 0].tolist()):
            hist = self._hist.get(user)
            if hist is None:
                hist = self._hist[user] = deque(maxlen=self._cap)
            if item in hist:
                continue
            if hist:
                past = np.fromiter(hist, dtype=np.int64, count=len(hist))
                if self.window is not None:
                    past = past[-self.window :]
                # a pair counts pair_decay ** (distance in the user's sequence - 1)
                pw = self.pair_decay ** np.arange(len(past) - 1, -1, -1, dtype=np.float32)
                self._C[item, past] += pw
                self._C[past, item] += pw
            self._n[item] += 1.0
            hist.append(item)

    def scores(self, user_id: str) -> np.ndarray:
        n = self.n_items
        u = self._users.get(user_id)
        hist = self._hist.get(u) if u >= 0 else None
        if not hist:
            return np.zeros(n, dtype=np.float32)
        h = np.fromiter(hist, dtype=np.int64, count=len(hist))
        if self.history is not None:
            h = h[-self.history :]
        weights = self.decay ** np.arange(len(h) - 1, -1, -1, dtype=np.float32)
        counts = np.maximum(self._n[:n], 1.0)
        # sim(h, j) = C[h, j] / (n_h ** alpha * n_j ** (1 - alpha)); alpha = 0.5 is the cosine
        return ((weights / counts[h] ** self.alpha) @ self._C[h, :n]) / counts ** (1.0 - self.alpha)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        nu, ni = len(self._users), self.n_items
        indptr, indices = self._seen.to_arrays(nu)
        hist_ptr = np.zeros(nu + 1, dtype=np.int64)
        chunks = [np.array(list(self._hist.get(u, ())), dtype=np.int64) for u in range(nu)]
        hist_ptr[1:] = np.cumsum([len(c) for c in chunks])
        return {
            "user_ids": self._users.to_array(), "item_ids": self._items.to_array(),
            "C": self._C[:ni, :ni].copy(), "n": self._n[:ni].copy(),
            "hist_indptr": hist_ptr,
            "hist_indices": np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64),
            "seen_indptr": indptr, "seen_indices": indices,
        }

    def _load_arrays(self, a: dict[str, np.ndarray]) -> None:
        self._users = IdIndex.from_array(a["user_ids"])
        self._items = IdIndex.from_array(a["item_ids"])
        self._C = a["C"].astype(np.float32)
        self._n = a["n"].astype(np.float32)
        ptr, idx = a["hist_indptr"], a["hist_indices"]
        self._hist = {
            u: deque(idx[ptr[u] : ptr[u + 1]].tolist(), maxlen=self._cap)
            for u in range(len(ptr) - 1) if ptr[u + 1] > ptr[u]
        }
        self._seen = SeenItems.from_arrays(a["seen_indptr"], a["seen_indices"])
