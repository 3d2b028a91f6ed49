"""Segments from behaviour, for users without a profile: online k-means in River, stable ids.

Each user's behaviour is summarised after each event by a few features:

    activity   log((events so far + 1) / (mean events per user so far + 1)): relative, so it
               does not grow for everyone as the stream goes on
    dwell      moving average of the weight of the user's positives (longer dwell weighs more)
    skip       moving average of "this event is a skip" (negative weight) over the user's events
    taste_*    an optional short taste vector supplied by the caller (e.g. the user's MF
               vector through a fixed random projection)

(moving averages with step ``memory``: current behaviour, so a user who changes habits
moves), standardised with running means and variances over all updates, then fed to
``river.cluster.KMeans``. Its centres start from the data, not at random: the first
``warmup`` updates are kept, and k-means++ seeding (seeded) picks the initial centres among
them, so no centre starts far from every user and never wins one (River's default random
centres can leave one centre with everybody). A cluster's index is its id for good: ``behaviour-<index>``
(River's centres move, their indices do not), with a readable label from the centre's
standardised coordinates, e.g. ``heavy/long-dwell/low-skip``.

Moves are damped: a user's segment changes only after the clusterer has put the user in
the same other cluster ``hysteresis`` updates in a row.

A batch updates each of its users' behaviour event by event, and the clusterer once per user
(with the behaviour the batch left), so a burst of one user's events is one step of k-means.

State (:class:`Clusterer`: counters, running sums, centres, the warm-up; :class:`UserBehaviour`
per user) is loaded for a batch, changed by :meth:`BehaviourModel.learn`, and handed back as
changes (:class:`BehaviourChanges`): counters and centre moves as *differences*, so that
batches of several workers add up; the seeding of the centres happens once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np


__all__ = ["BehaviourParams", "BehaviourModel", "Clusterer", "UserBehaviour", "BehaviourChanges", "update_stats",
           "kmeans_pp", "centre_label", "settle", "BASE_FEATURES"]

_BASE = BASE_FEATURES = ("activity", "dwell", "skip")


def update_stats(stats: list | None, weight: float, memory: float) -> list:
    """A user's behaviour after one more event: [events, dwell moving average (None before a
    positive), skip moving average].

    >>> s = update_stats(None, 1.0, 0.5); update_stats(s, -0.5, 0.5)
    [2.0, 1.0, 0.5]
    """
    if stats is None:
        stats = [0.0, None, float(weight < 0)]
    stats[0] += 1
    if weight > 0:
        stats[1] = weight if stats[1] is None else stats[1] + memory * (weight - stats[1])
    stats[2] += memory * (float(weight < 0) - stats[2])
    return stats


def kmeans_pp(z: np.ndarray, n_clusters: int, seed: int) -> list[int]:
    """k-means++ seeding (seeded): the rows of ``z`` chosen as the initial centres."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(z)))]
    for _ in range(1, n_clusters):
        d2 = np.min(((z[:, None, :] - z[chosen][None, :, :]) ** 2).sum(axis=2), axis=1)
        total = d2.sum()
        chosen.append(int(rng.choice(len(z), p=d2 / total)) if total > 0 else int(rng.integers(len(z))))
    return chosen


def centre_label(activity: float, dwell: float, skip: float) -> str:
    """A readable name of a centre from its standardised coordinates (above or below the mean).

    >>> centre_label(1.2, -0.3, 0.4)
    'heavy/short-dwell/high-skip'
    """
    return "/".join(("heavy" if activity > 0.5 else "light" if activity < -0.5 else "regular",
                     "long-dwell" if dwell > 0 else "short-dwell", "high-skip" if skip > 0 else "low-skip"))


def settle(current: str | None, pending: tuple[str, int] | None, proposed: str,
           hysteresis: int) -> tuple[str, tuple[str, int] | None]:
    """A user's segment after the clusterer proposed one: (segment, pending move). A move
    needs ``hysteresis`` proposals of the same other segment in a row.

    >>> settle("a", None, "b", 2), settle("a", ("b", 1), "b", 2), settle("a", ("b", 1), "a", 2)
    (('a', ('b', 1)), ('b', None), ('a', None))
    """
    if current is None:
        return proposed, None
    if proposed == current:
        return current, None
    candidate, count = pending if pending is not None else (proposed, 0)
    count = count + 1 if candidate == proposed else 1
    if count >= hysteresis:
        return proposed, None
    return current, (proposed, count)


@dataclass(frozen=True)
class BehaviourParams:
    """Behaviour segmentation's parameters.

    Parameters
    ----------
    n_clusters
        Number of segments (River ``KMeans`` centres).
    halflife
        River ``KMeans`` step: how far the closest centre moves towards each update.
    hysteresis
        Consecutive updates in another cluster before a user moves there.
    memory
        Step of the per-user moving averages (dwell, skip): about 1 / memory recent events count.
    min_events
        Events a user needs before a first assignment (before that: no segment).
    taste_dims
        Length of the taste vector (the user's MF row through a fixed seeded projection; 0: none).
    warmup
        Updates (of users with ``min_events``) kept to seed the centres.
    seed
        Seed of the centres' seeding, River's k-means and the taste projection.
    """

    n_clusters: int = 4
    halflife: float = 0.02
    hysteresis: int = 3
    memory: float = 0.1
    min_events: int = 3
    taste_dims: int = 2
    warmup: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.n_clusters <= 32:
            raise ValueError(f"BehaviourParams: n_clusters must be in 1..32 (segments are few), got {self.n_clusters}")
        if not 0 < self.memory <= 1:
            raise ValueError(f"BehaviourParams: memory must be in (0, 1], got {self.memory}")
        if self.hysteresis < 1 or self.min_events < 1 or self.taste_dims < 0 or self.warmup < self.n_clusters:
            raise ValueError(f"BehaviourParams: need hysteresis >= 1, min_events >= 1, taste_dims >= 0, "
                             f"warmup >= n_clusters, got {self.hysteresis}, {self.min_events}, {self.taste_dims}, "
                             f"{self.warmup}")

    @property
    def features(self) -> list[str]:
        return list(_BASE) + [f"taste_{d}" for d in range(self.taste_dims)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def segment_id(cluster: int) -> str:
    """A behaviour segment's id: its cluster's index, for good.

    >>> segment_id(2)
    'behaviour-2'
    """
    return f"behaviour-{cluster}"


@dataclass
class Clusterer:
    """The shared clusterer: update counters, running sums of the features, centres, warm-up."""

    n: float = 0.0  # updates
    events: float = 0.0  # every user's signal events
    users: float = 0.0  # users with behaviour
    sums: np.ndarray | None = None
    sumsq: np.ndarray | None = None
    centres: np.ndarray | None = None  # (n_clusters, features), standardised; None before seeding
    warmup: list[list[float]] = field(default_factory=list)  # raw vectors kept to seed the centres

    def copy(self) -> "Clusterer":
        return Clusterer(self.n, self.events, self.users, None if self.sums is None else self.sums.copy(),
                         None if self.sumsq is None else self.sumsq.copy(),
                         None if self.centres is None else self.centres.copy(), [list(v) for v in self.warmup])


def _standardised(x: np.ndarray, n, sums: np.ndarray, sumsq: np.ndarray) -> np.ndarray:
    """``x`` standardised with running sums of ``n`` vectors (broadcast over rows for many users,
    each with the sums as they added theirs)."""
    mean = sums / n
    var = np.maximum(sumsq - n * mean * mean, 0.0) / np.maximum(n - 1, 1)
    std = np.sqrt(var)
    return (x - mean) / np.where(std > 0, std, 1.0)


@dataclass
class UserBehaviour:
    """One user's behaviour and behaviour segment."""

    events: float = 0.0
    dwell: float | None = None  # moving average of positives' weight (None before a positive)
    skip: float = 0.0  # moving average of "was a skip"
    segment: str | None = None
    pending: str | None = None  # a move in waiting ...
    streak: int = 0  # ... proposed this many times in a row


@dataclass
class BehaviourChanges:
    """A batch's changes: users' new behaviour, counter and centre differences, or the seeding."""

    users: dict[str, UserBehaviour] = field(default_factory=dict)
    add: dict[str, float] = field(default_factory=dict)  # counters and sums: differences
    moves: dict[str, float] = field(default_factory=dict)  # centre coordinates ("c<j>:<feature>"): differences
    warmup: list[list[float]] = field(default_factory=list)  # raw vectors to keep (not seeded yet)
    centres: dict[str, float] = field(default_factory=dict)  # set when this batch seeded them: absolute
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (user, from, to)


class BehaviourModel:
    """Assigns behaviour segments from a batch's signal events, in order (see the module docstring).

    Examples
    --------
    >>> model = BehaviourModel(BehaviourParams(n_clusters=2, halflife=0.05, hysteresis=2, min_events=2, taste_dims=0,
    ...                                        seed=3))
    >>> clusterer, users = model.new_clusterer(), {}
    >>> for n in range(300):  # heavy clickers and users who mostly skip, a batch of two events at a time
    ...     batch = [(f"clicker{n % 3}", 2.0), (f"skipper{n % 30}", -1.0 if (n // 30) % 4 else 1.0)]
    ...     _ = model.learn(batch, users, clusterer, {})
    >>> users["clicker0"].segment != users["skipper0"].segment
    True
    >>> sorted(model.labels(clusterer).values())
    ['heavy/long-dwell/low-skip', 'light/short-dwell/high-skip']
    """

    def __init__(self, params: BehaviourParams, n_factors: int = 32) -> None:
        from river import cluster  # noqa: F401  (imported now, at start, not in the first batch)

        self.params = params
        self.features = params.features
        rng = np.random.default_rng(params.seed)
        self.projection = rng.normal(0.0, 1.0 / math.sqrt(n_factors), (n_factors, params.taste_dims))

    segment_id = staticmethod(segment_id)

    def new_clusterer(self) -> Clusterer:
        f = len(self.features)
        return Clusterer(sums=np.zeros(f), sumsq=np.zeros(f))

    def taste(self, vector: np.ndarray | None) -> np.ndarray | None:
        """A user's taste features: their MF row (unit length) through the fixed projection."""
        return self.tastes([vector])[0] if self.params.taste_dims else None

    def tastes(self, vectors: list) -> np.ndarray:
        """:meth:`taste` of many users at once (zeros for no row, or one of another factor count)."""
        k = self.projection.shape[0]
        V = np.zeros((len(vectors), k))
        for i, v in enumerate(vectors):
            if v is not None and len(v) == k:
                V[i] = v
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        return (V / np.where(norms > 0, norms, 1.0)) @ self.projection

    def _vectors(self, recs: list["UserBehaviour"], mean_events: float, vectors: list) -> np.ndarray:
        """Many users' raw behaviour vectors: activity relative to the mean user's (log), dwell and
        skip moving averages, then their taste from their MF rows."""
        X = np.zeros((len(recs), len(_BASE) + self.params.taste_dims))
        if not recs:
            return X
        X[:, 0] = np.log((np.array([r.events for r in recs]) + 1.0) / (mean_events + 1.0))
        X[:, 1] = [0.0 if r.dwell is None else r.dwell for r in recs]
        X[:, 2] = [r.skip for r in recs]
        if self.params.taste_dims:
            X[:, 3:] = self.tastes(vectors)
        return X

    def learn(self, events: Sequence[tuple[str, float]], users: dict[str, UserBehaviour], model: Clusterer,
              vectors: dict[str, np.ndarray | None]) -> BehaviourChanges:
        """A batch of (user, signal weight) events; ``users`` and ``model`` change in place
        (``users`` gains a record for a user seen first); ``vectors`` the users' MF rows.

        Each event updates its user's behaviour (events, moving averages), in order; then each
        user of the batch updates the clusterer once, with their behaviour after the batch (in
        the order the users first appear): one k-means step per user and batch, not per event.
        """
        from river import cluster

        p = self.params
        out = BehaviourChanges()
        start = (model.n, model.events, model.users, model.sums.copy(), model.sumsq.copy())
        centres0 = None if model.centres is None else model.centres.copy()
        km = None
        order: dict[str, None] = {}
        for uid, w in events:
            if w == 0:
                continue
            rec = users.get(uid)
            if rec is None:
                rec = users[uid] = UserBehaviour()
            stats = [rec.events, rec.dwell, rec.skip] if rec.events > 0 else None
            if stats is None:
                model.users += 1
            rec.events, rec.dwell, rec.skip = update_stats(stats, w, p.memory)
            out.users[uid] = rec
            model.events += 1
            order[uid] = None
        uids = list(order)
        mean_events = model.events / model.users if model.users else 0.0
        X = self._vectors([users[u] for u in uids], mean_events, [vectors.get(u) for u in uids])
        # the running sums as each user adds their vector, in order (standardised with those)
        n = model.n + np.arange(1, len(uids) + 1, dtype=np.float64)
        sums = model.sums + np.cumsum(X, axis=0)
        sumsq = model.sumsq + np.cumsum(X * X, axis=0)
        if len(uids):
            model.n, model.sums, model.sumsq = float(n[-1]), sums[-1].copy(), sumsq[-1].copy()
        Z = _standardised(X, n[:, None], sums, sumsq)
        for i, uid in enumerate(uids):
            rec = users[uid]
            if rec.events < p.min_events:
                continue
            if model.centres is None:
                model.warmup.append(X[i].tolist())
                out.warmup.append(X[i].tolist())
                if len(model.warmup) < p.warmup:
                    continue
                z = _standardised(np.array(model.warmup[: p.warmup]), n[i], sums[i], sumsq[i])
                model.centres = z[kmeans_pp(z, p.n_clusters, p.seed)].copy()
                out.warmup = []
            if km is None:
                km = cluster.KMeans(n_clusters=p.n_clusters, halflife=p.halflife, mu=0.0, sigma=1.0, seed=p.seed)
                for j in range(p.n_clusters):
                    km.centers[j].update(zip(self.features, model.centres[j].tolist()))
            j = km.learn_predict_one(dict(zip(self.features, Z[i].tolist())))
            current = rec.segment
            rec.segment, pending = settle(current, (rec.pending, rec.streak) if rec.pending else None,
                                          segment_id(j), p.hysteresis)
            rec.pending, rec.streak = (pending[0], pending[1]) if pending else (None, 0)
            if current is not None and rec.segment != current:
                out.moved.append((uid, current, rec.segment))
        if km is not None:
            model.centres = np.array([[km.centers[j][name] for name in self.features] for j in range(p.n_clusters)])
        n0, e0, u0, s0, q0 = start
        add = {"n": model.n - n0, "events": model.events - e0, "users": model.users - u0}
        add.update({f"sum:{name}": float(v) for name, v in zip(self.features, model.sums - s0)})
        add.update({f"sumsq:{name}": float(v) for name, v in zip(self.features, model.sumsq - q0)})
        out.add = {k: v for k, v in add.items() if v != 0.0}
        if model.centres is not None:
            if centres0 is None:  # seeded in this batch: the centres as they stand now
                out.centres = {f"c{j}:{name}": float(model.centres[j, i])
                               for j in range(p.n_clusters) for i, name in enumerate(self.features)}
            else:
                d = model.centres - centres0
                out.moves = {f"c{j}:{name}": float(d[j, i]) for j in range(p.n_clusters)
                             for i, name in enumerate(self.features) if d[j, i] != 0.0}
        return out

    def labels(self, model: Clusterer) -> dict[str, str]:
        """A readable label per segment id from its centre (standardised: above or below the mean)."""
        if model.centres is None:
            return {}
        return {segment_id(j): centre_label(*model.centres[j, :3].tolist()) for j in range(self.params.n_clusters)}
