"""Per-segment re-ranking: a global model's candidates re-ordered by River logistic regressions.

A global model (:class:`HybridRanker` or :class:`OnlineMF`) learns from every event and
proposes each user's top ``n_candidates`` items, with features per candidate
(:mod:`stream.models.candidates`: the global score, the hybrid's parts, the segment's
popularity, dwell prior and the item's age). Two kinds of River logistic-regression layer
score them:

* the **shared** layer learns from every segment's events;
* each **segment** layer learns from its own segment's events only, stacked on the shared
  one: its features are the same plus ``base``, the shared layer's logit (and, with
  ``item_bias``, an indicator per item: the segment's own item biases).

Transfer: the shared layer starts with weight ``init_weight`` on ``global`` and 0
elsewhere, a segment layer with weight 1 on ``base`` and 0 elsewhere, so an untrained
re-ranker orders the candidates exactly as the global model does (ties keep the global
order); learning moves a segment away from the global ranking as far as its events pull.
Learning: on a positive event (u, i) with i among u's candidates, ``n_negatives``
candidates drawn at random; pairwise (the default), one ``learn_one`` on the difference
``x_i - x_j`` with y = 1 per negative j (a logistic loss on the score difference), or
pointwise, x_i with y = 1 and each x_j with y = 0. Then the global model learns the event.

A :class:`~stream.models.guard.SegmentGuard` per segment compares, on each prequential
trial (:meth:`SegmentedRanker.trial`), the segment layer's top-k with the global top-k;
while the segment layer does worse, the segment is served the global ranking.
docs/MODELS.md has the maths and the reasons.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from stream.models.base import OnlineModel
from stream.models.candidates import CandidateFeatures
from stream.models.guard import SegmentGuard
from stream.models.river_lr import item_key
from stream.models.segment_layers import SegmentLayers
from stream.models.segment_stats import SegmentItemStats

__all__ = ["SegmentedRanker", "Trial", "SEGMENT_KEYS"]

log = logging.getLogger(__name__)

#: Parameters a segment may override in ``segment_params``.
SEGMENT_KEYS = ("learning_rate", "l2", "n_candidates", "n_negatives", "guard_margin", "guard_window",
                "guard_min_trials", "guard_z")


@dataclass(frozen=True)
class Trial:
    """One prequential trial: the rankings before learning, and whether the guard switched."""

    segment: str
    served: list[str]
    global_: list[str]
    segment_model: list[str]
    shared: list[str]
    switched: bool


@dataclass
class _Context:
    """A user's candidates and their features, as of one global-model version."""

    user_id: str
    segment: str
    version: int
    idx: np.ndarray  # (N,) global item rows, in global order
    X: np.ndarray  # (N, F) normalised features
    shared: np.ndarray  # (N,) shared layer logits
    seg: np.ndarray  # (N,) segment layer logits
    order: np.ndarray  # (N,) positions in ctx.idx, best first by the segment layer


class SegmentedRanker(OnlineModel):
    """A global model plus a River re-ranker per segment, with transfer and a guard.

    Parameters
    ----------
    global_model, global_params
        The global model's class name (``"HybridRanker"`` or ``"OnlineMF"``) and constructor arguments.
    n_candidates
        Global top-N re-ranked.
    learning_rate, l2
        SGD step and L2 of the segment layers (River ``LogisticRegression``).
    n_negatives
        Negatives per positive, drawn at random among the candidates.
    negative_pool
        Draw the negatives from the segment layer's best ``negative_pool`` candidates only
        (None: all of them, the default; a pool of the top items biases the layers against
        the global score, measured in docs/EVALUATION.md).
    init_weight
        The shared layer's initial weight on the ``global`` column.
    shared, shared_learning_rate
        Whether the shared layer exists (False: each segment layer starts from the global
        column itself), and its step (None: ``learning_rate``).
    item_bias
        Segment layers learn a bias per item (indicator features ``i:<item id>``).
    popularity_half_life, prior_events
        Of the segment statistics (:class:`~stream.models.segment_stats.SegmentItemStats`).
    guard_window, guard_margin, guard_min_trials, guard_z
        Of each segment's :class:`~stream.models.guard.SegmentGuard`.
    segment_params
        Per segment, overrides of ``SEGMENT_KEYS`` (``streamrec tune --space rerank`` writes them).
    default_segment
        The segment of a user without one, and of segments past ``max_segments``.
    max_segments
        Segment names beyond this many go to ``default_segment`` (segments are few).
    objective
        ``"pairwise"`` (logistic loss on score differences) or ``"pointwise"`` (clicked or not).
    seed
        Seed of the negative sampling (the global model has its own in ``global_params``).

    Examples
    --------
    >>> ranker = SegmentedRanker("HybridRanker", {"mf_weight": 0.0, "popularity_weight": 0.5})
    >>> ranker.set_segment("cat", "pets")
    'pets'
    >>> ranker.learn_many(["a", "a", "b", "b", "cat"], ["x", "y", "x", "z", "x"])
    >>> t = ranker.trial("cat", "y", k=2)  # before learning (cat, y): every ranking, the guard updated
    >>> t.segment, t.served, t.global_
    ('pets', ['y', 'z'], ['y', 'z'])
    >>> ranker.learn_one("cat", "y")
    >>> ranker.rank("cat", k=2)
    ['z']
    """

    _param_names = (
        "global_model", "global_params", "n_candidates", "learning_rate", "l2", "n_negatives", "negative_pool",
        "init_weight", "shared", "shared_learning_rate", "item_bias", "popularity_half_life", "prior_events",
        "guard_window", "guard_margin", "guard_min_trials", "guard_z", "segment_params", "default_segment",
        "max_segments", "objective", "seed",
    )

    def __init__(
        self,
        global_model: str = "HybridRanker",
        global_params: dict[str, Any] | None = None,
        n_candidates: int = 100,
        learning_rate: float = 0.02,
        l2: float = 0.0,
        n_negatives: int = 4,
        negative_pool: int | None = None,
        init_weight: float = 4.0,
        shared: bool = True,
        shared_learning_rate: float | None = None,
        item_bias: bool = False,
        popularity_half_life: float = 1000.0,
        prior_events: float = 5.0,
        guard_window: int = 500,
        guard_margin: float = 0.01,
        guard_min_trials: int = 100,
        guard_z: float = 2.0,
        segment_params: dict[str, dict[str, Any]] | None = None,
        default_segment: str = "all",
        max_segments: int = 32,
        objective: str = "pairwise",
        seed: int = 0,
    ) -> None:
        if objective not in ("pairwise", "pointwise"):
            raise ValueError(f"SegmentedRanker: objective must be 'pairwise' or 'pointwise', got {objective!r}")
        if global_model not in ("HybridRanker", "OnlineMF"):
            raise ValueError(f"SegmentedRanker: global_model must be 'HybridRanker' or 'OnlineMF', "
                             f"got {global_model!r}")
        for name, value in (("n_candidates", n_candidates), ("n_negatives", n_negatives),
                            ("negative_pool", negative_pool or 1), ("max_segments", max_segments)):
            if value < 1:
                raise ValueError(f"SegmentedRanker: {name} must be >= 1, got {value}")
        for segment, overrides in (segment_params or {}).items():
            unknown = set(overrides) - set(SEGMENT_KEYS)
            if unknown:
                raise ValueError(f"SegmentedRanker: segment_params[{segment!r}] has {sorted(unknown)}; "
                                 f"a segment may override only {list(SEGMENT_KEYS)}")
        self.global_model = global_model
        self.global_params = global_params
        self.n_candidates = n_candidates
        self.learning_rate = learning_rate
        self.l2 = l2
        self.n_negatives = n_negatives
        self.negative_pool = negative_pool
        self.init_weight = init_weight
        self.shared = shared
        self.shared_learning_rate = shared_learning_rate
        self.item_bias = item_bias
        self.popularity_half_life = popularity_half_life
        self.prior_events = prior_events
        self.guard_window = guard_window
        self.guard_margin = guard_margin
        self.guard_min_trials = guard_min_trials
        self.guard_z = guard_z
        self.segment_params = segment_params
        self.default_segment = default_segment
        self.max_segments = max_segments
        self.objective = objective
        self.seed = seed
        self._init_state()

    def _init_state(self) -> None:
        from stream.models.hybrid import HybridRanker
        from stream.models.mf import OnlineMF

        cls = HybridRanker if self.global_model == "HybridRanker" else OnlineMF
        self.global_ = cls(**(self.global_params or {}))
        self.stats = SegmentItemStats(self.popularity_half_life, self.prior_events)
        self.features = CandidateFeatures(self.global_, self.stats)
        self.columns = self.features.columns
        self._rng = np.random.default_rng(self.seed)
        self.layers = SegmentLayers(self.columns, self._param, self.shared,
                                    self.shared_learning_rate or self.learning_rate, self.init_weight,
                                    self.objective == "pairwise")
        self._user_segment: dict[str, str] = {}
        self._segments: list[str] = []  # every segment name accepted, first-seen order
        self._refused: set[str] = set()  # segment names past max_segments (warned once)
        self._item_keys: list[str] = []  # item_key(id) per global item row
        self._created_at: dict[str, float] = {}  # created_at of items without a row yet
        self._version = 0
        self._cache: _Context | None = None

    # -- segments ------------------------------------------------------------------
    @property
    def _items(self):
        return self.global_._items

    def _param(self, segment: str, name: str) -> Any:
        return (self.segment_params or {}).get(segment, {}).get(name, getattr(self, name))

    def set_segment(self, user_id: str, segment: str) -> str:
        """Put a user in a segment (from a profile, or behaviour); returns the segment used."""
        if segment not in self._segments:
            if len(self._segments) >= self.max_segments:
                if segment not in self._refused:
                    self._refused.add(segment)
                    log.warning("SegmentedRanker: segment %r is past max_segments=%d; its users go to %r",
                                segment, self.max_segments, self.default_segment)
                segment = self.default_segment
            if segment not in self._segments:
                self._segments.append(segment)
        if self._user_segment.get(user_id) != segment:
            self._user_segment[user_id] = segment
            self._version += 1  # a cached candidate list was built for the old segment
        return segment

    def segment_of(self, user_id: str) -> str:
        return self._user_segment.get(user_id, self.default_segment)

    @property
    def guards(self) -> dict[str, SegmentGuard]:
        """Each segment's guard (a segment gets one with its first trial or positive)."""
        return self.layers.guards

    def switches(self) -> list[dict[str, Any]]:
        """Every guard switch so far, segment by segment, in trial order."""
        return self.layers.switches()

    # -- features ------------------------------------------------------------------
    def _keys(self, rows: np.ndarray) -> list[str] | None:
        if not self.item_bias:
            return None
        ids = self._items.ids
        while len(self._item_keys) < len(ids):
            self._item_keys.append(item_key(ids[len(self._item_keys)]))
        return [self._item_keys[r] for r in rows.tolist()]

    def _context(self, user_id: str, k: int = 10) -> _Context:
        cached = self._cache
        if cached is not None and cached.user_id == user_id and cached.version == self._version \
                and len(cached.idx) >= min(k, self.n_items):
            return cached
        segment = self.segment_of(user_id)
        idx, X = self.features.build(user_id, segment, max(self._param(segment, "n_candidates"), k))
        shared, seg = self.layers.scores(segment, X, self._keys(idx))
        order = np.argsort(-seg, kind="stable")  # ties keep the global order
        self._cache = _Context(user_id, segment, self._version, idx, X, shared, seg, order)
        return self._cache

    # -- ranking -------------------------------------------------------------------
    def _ids(self, rows: np.ndarray) -> list[str]:
        ids = self._items.ids
        return [ids[r] for r in rows.tolist()]

    def rank(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> list[str]:
        """The served top-k: the segment layer's, or the global one while the guard says so."""
        ctx = self._context(user_id, k)
        if not self.layers.guard(ctx.segment).serving_segment:
            return self._ids(ctx.idx[:k])
        return self._ids(ctx.idx[ctx.order[:k]])

    def trial(self, user_id: str, item_id: str, k: int = 10) -> Trial:
        """A prequential trial on (user, item) before learning it: every ranking, and the guard updated."""
        ctx = self._context(user_id, k)
        guard = self.layers.guard(ctx.segment)
        glob = self._ids(ctx.idx[:k])
        seg = self._ids(ctx.idx[ctx.order[:k]])
        shared = self._ids(ctx.idx[np.argsort(-ctx.shared, kind="stable")[:k]]) if self.shared else glob
        served = seg if guard.serving_segment else glob
        switched = guard.update(item_id in seg, item_id in glob)
        return Trial(ctx.segment, served, glob, seg, shared, switched)

    def scores(self, user_id: str) -> np.ndarray:
        """The global model's scores (the re-ranker orders only its top candidates; see ``rank``)."""
        return self.global_.scores(user_id)

    # -- learning ------------------------------------------------------------------
    def learn_many(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        weights: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
    ) -> None:
        """Re-rankers learn each positive (from the global state before the batch), then the
        global model learns the batch, then the segment statistics count it."""
        w = self._batch_weights(user_ids, item_ids, weights)
        for user_id, item_id, weight in zip(user_ids, item_ids, w.tolist()):
            if weight > 0:
                self._learn_rerank(user_id, item_id)
        self.global_.learn_many(user_ids, item_ids, w, timestamps)
        rows = self._items.add_many(item_ids)
        n_items = self.n_items
        stamps = [None] * len(w) if timestamps is None else [float(t) for t in timestamps]
        for user_id, row, weight, ts in zip(user_ids, rows.tolist(), w.tolist(), stamps):
            self.stats.learn_one(self.segment_of(user_id), row, weight, n_items, ts)
        if self._created_at:
            for item_id, row in zip(item_ids, rows.tolist()):
                if item_id in self._created_at:
                    self.stats.set_created(row, self._created_at.pop(item_id), n_items)
        self._version += 1

    def set_item_created(self, item_id: str, created_at: float) -> None:
        """An item's created_at (items topic, event-time seconds); its age counts from there."""
        row = self._items.get(item_id)
        if row < 0:  # not in the global model yet: applied when its first event arrives
            self._created_at[item_id] = float(created_at)
        else:
            self.stats.set_created(row, float(created_at), self.n_items)

    def _learn_rerank(self, user_id: str, item_id: str) -> None:
        row = self._items.get(item_id)
        if row < 0 or self.global_._users.get(user_id) < 0:
            return  # an unknown item cannot be ranked; a user without history is not a trial
        ctx = self._context(user_id)
        hit = np.flatnonzero(ctx.idx == row)
        if not hit.size:
            return  # outside the candidates: re-ordering them cannot reach it
        p = int(hit[0])
        n_neg = self._param(ctx.segment, "n_negatives")
        pool = ctx.order[: self.negative_pool]
        pool = pool[pool != p]
        n_neg = min(n_neg, len(pool))
        if n_neg == 0:
            return
        negatives = self._rng.choice(pool, size=n_neg, replace=False).tolist()
        keys = self._keys(ctx.idx)
        # (features, shared logit, item indicators, label) per example
        if self.layers.pairwise:  # the positive against each negative: logistic loss on the score difference
            examples = [(ctx.X[p] - ctx.X[j], ctx.shared[p] - ctx.shared[j],
                         {keys[p]: 1.0, keys[j]: -1.0} if keys else {}, True) for j in negatives]
        else:
            examples = [(ctx.X[j], ctx.shared[j], {keys[j]: 1.0} if keys else {}, j == p) for j in [p] + negatives]
        self.layers.learn(ctx.segment, examples)
        self._version += 1

    # -- persistence -----------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        out = {f"global.{k}": v for k, v in self.global_._state_arrays().items()}
        out.update({f"stats.{k}": v for k, v in self.stats.state().items()})
        users = list(self._user_segment)
        out["user_ids"] = np.array(users, dtype=np.str_) if users else np.empty(0, dtype="<U1")
        out["user_segments"] = np.array([self._segments.index(self._user_segment[u]) for u in users], dtype=np.int64)
        out["layers"] = np.array(json.dumps({
            "segments": self._segments,
            **self.layers.to_dict(),
            "rng": self._rng.bit_generator.state,
            "created_at": self._created_at,
        }))
        return out

    def _load_arrays(self, a: dict[str, np.ndarray]) -> None:
        self.global_._load_arrays({k[7:]: v for k, v in a.items() if k.startswith("global.")})
        self.stats.load({k[6:]: v for k, v in a.items() if k.startswith("stats.")})
        data = json.loads(str(a["layers"]))
        self._segments = list(data["segments"])
        self._user_segment = {u: self._segments[s]
                              for u, s in zip(a["user_ids"].tolist(), a["user_segments"].tolist())}
        self.layers.load(data)
        self._rng.bit_generator.state = data["rng"]
        self._created_at = dict(data["created_at"])
        self._version += 1
        self._cache = None
