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
the same other cluster ``hysteresis`` updates in a row; each move is counted per
(from, to) in :attr:`BehaviourSegmenter.assignments`.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from stream.models.segments import Assignments

__all__ = ["BehaviourSegmenter", "update_stats", "behaviour_vector", "kmeans_pp", "centre_label", "settle",
           "BASE_FEATURES"]

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


def behaviour_vector(stats: list, mean_events: float, taste: Sequence[float] | None, taste_dims: int) -> np.ndarray:
    """The raw feature vector of a user's behaviour (activity relative to the mean user's)."""
    events, dwell, skip = stats
    x = np.zeros(len(_BASE) + taste_dims)
    x[0] = np.log((events + 1.0) / (mean_events + 1.0))
    x[1] = 0.0 if dwell is None else dwell
    x[2] = skip
    if taste_dims:
        if taste is None or len(taste) != taste_dims:
            raise ValueError(f"BehaviourSegmenter.learn_one: taste must have taste_dims={taste_dims} "
                             f"values, got {None if taste is None else len(taste)}")
        x[3:] = taste
    return x


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


class BehaviourSegmenter:
    """Online clustering of users' behaviour into ``n_clusters`` stable segments.

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
        Length of the taste vector passed to :meth:`learn_one` (0: no taste features).
    warmup
        Updates (of users with ``min_events``) kept to seed the centres; no user has a segment
        before (at least ``n_clusters``).
    seed
        Seed of the centres' initial positions.

    Examples
    --------
    >>> seg = BehaviourSegmenter(n_clusters=2, halflife=0.05, hysteresis=2, min_events=2, seed=3)
    >>> for n in range(300):  # heavy clickers and users who mostly skip
    ...     _ = seg.learn_one(f"clicker{n % 3}", 2.0)
    ...     _ = seg.learn_one(f"skipper{n % 30}", -1.0 if (n // 30) % 4 else 1.0)
    >>> seg.segment_of("clicker0") != seg.segment_of("skipper0")
    True
    >>> sorted(seg.labels().values())
    ['heavy/long-dwell/low-skip', 'light/short-dwell/high-skip']
    """

    def __init__(self, n_clusters: int = 4, halflife: float = 0.02, hysteresis: int = 3, memory: float = 0.1,
                 min_events: int = 3, taste_dims: int = 0, warmup: int = 100, seed: int = 0) -> None:
        if not 1 <= n_clusters <= 32:
            raise ValueError(f"BehaviourSegmenter: n_clusters must be in 1..32 (segments are few), got {n_clusters}")
        if not 0 < memory <= 1:
            raise ValueError(f"BehaviourSegmenter: memory must be in (0, 1], got {memory}")
        if hysteresis < 1 or min_events < 1 or taste_dims < 0 or warmup < n_clusters:
            raise ValueError(f"BehaviourSegmenter: need hysteresis >= 1, min_events >= 1, taste_dims >= 0, "
                             f"warmup >= n_clusters, got {hysteresis}, {min_events}, {taste_dims}, {warmup}")
        self.n_clusters = n_clusters
        self.halflife = halflife
        self.hysteresis = hysteresis
        self.memory = memory
        self.min_events = min_events
        self.taste_dims = taste_dims
        self.warmup = warmup
        self.seed = seed
        self._init_state()

    def _init_state(self) -> None:
        from river import cluster

        self.features = list(_BASE) + [f"taste_{d}" for d in range(self.taste_dims)]
        self._kmeans = cluster.KMeans(n_clusters=self.n_clusters, halflife=self.halflife, mu=0.0, sigma=1.0,
                                      seed=self.seed)
        # running mean and variance (Welford) of every feature, for standardising
        self._n = 0
        self._events = 0  # all users' events
        self._mean = np.zeros(len(self.features))
        self._m2 = np.zeros(len(self.features))
        # per user: [events, dwell moving average or None, skip moving average]
        self._users: dict[str, list[float]] = {}
        self._pending: dict[str, tuple[str, int]] = {}  # user -> (candidate segment, updates in a row)
        self._buffer: list[list[float]] | None = []  # the warm-up's raw vectors; None once seeded
        self.assignments = Assignments()

    def get_params(self) -> dict[str, Any]:
        return {"n_clusters": self.n_clusters, "halflife": self.halflife, "hysteresis": self.hysteresis,
                "memory": self.memory,
                "min_events": self.min_events, "taste_dims": self.taste_dims, "warmup": self.warmup,
                "seed": self.seed}

    @staticmethod
    def segment_id(cluster: int) -> str:
        return f"behaviour-{cluster}"

    def _vector(self, user_id: str, taste: Sequence[float] | None) -> np.ndarray:
        return behaviour_vector(self._users[user_id], self._events / len(self._users), taste, self.taste_dims)

    def learn_one(self, user_id: str, weight: float, ts: float | None = None,
                  taste: Sequence[float] | None = None) -> str | None:
        """Update the user's behaviour with one event; returns the user's segment (None while too new)."""
        stats = self._users[user_id] = update_stats(self._users.get(user_id), weight, self.memory)
        self._events += 1
        x = self._vector(user_id, taste)
        self._n += 1
        delta = x - self._mean
        self._mean += delta / self._n
        self._m2 += delta * (x - self._mean)
        if stats[0] < self.min_events:
            return None
        if self._buffer is not None:  # warm-up: users with min_events, seeds of the centres
            self._buffer.append(x.tolist())
            if len(self._buffer) < self.warmup:
                return None
            self._seed_centres(np.array(self._buffer))
            self._buffer = None
        cluster = self._kmeans.learn_predict_one(dict(zip(self.features, self._standardise(x).tolist())))
        return self._settle(user_id, self.segment_id(cluster))

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        std = np.sqrt(self._m2 / max(self._n - 1, 1))
        return (x - self._mean) / np.where(std > 0, std, 1.0)

    def _seed_centres(self, raw: np.ndarray) -> None:
        """k-means++ seeding over the warm-up's vectors, written into River's centres."""
        z = self._standardise(raw)
        for c, row in enumerate(kmeans_pp(z, self.n_clusters, self.seed)):
            self._kmeans.centers[c].update(zip(self.features, z[row].tolist()))

    def _settle(self, user_id: str, proposed: str) -> str:
        segment, pending = settle(self.assignments.get(user_id), self._pending.pop(user_id, None), proposed,
                                  self.hysteresis)
        if pending is not None:
            self._pending[user_id] = pending
        self.assignments.set(user_id, segment)
        return segment

    def segment_of(self, user_id: str) -> str | None:
        return self.assignments.get(user_id)

    def labels(self) -> dict[str, str]:
        """A readable label per segment id from its centre (standardised: above or below the mean)."""
        out = {}
        for c, centre in self._kmeans.centers.items():
            out[self.segment_id(c)] = centre_label(*(centre.get(name, 0.0) for name in _BASE))
        return out

    # -- persistence (JSON-ready data) -------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.get_params(), "n": self._n, "events": self._events,
            "mean": self._mean.tolist(), "m2": self._m2.tolist(),
            "centers": {str(c): dict(centre) for c, centre in self._kmeans.centers.items()},
            "rng": json.dumps(self._kmeans._rng.getstate()),
            "users": self._users, "pending": {u: list(p) for u, p in self._pending.items()},
            "buffer": self._buffer,
            "assignments": self.assignments.users,
            "moves": [[a, b, n] for (a, b), n in self.assignments.moves.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BehaviourSegmenter":
        seg = cls(**data["params"])
        seg._n, seg._events = int(data["n"]), int(data["events"])
        seg._mean, seg._m2 = np.array(data["mean"]), np.array(data["m2"])
        for c, centre in data["centers"].items():
            seg._kmeans.centers[int(c)].update(centre)
        state = json.loads(data["rng"])
        # random.Random's state is (version, tuple of ints, gauss_next): JSON turned the tuples into lists
        seg._kmeans._rng.setstate((state[0], tuple(state[1]), state[2]))
        seg._users = {u: list(s) for u, s in data["users"].items()}
        seg._pending = {u: (p[0], int(p[1])) for u, p in data["pending"].items()}
        seg._buffer = None if data["buffer"] is None else [list(v) for v in data["buffer"]]
        seg.assignments.users = dict(data["assignments"])
        for a, b, n in data["moves"]:
            seg.assignments.moves[(a, b)] = n
        return seg

