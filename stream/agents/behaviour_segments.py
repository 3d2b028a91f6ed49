"""Behaviour segments in the worker: users without a profile segment, clustered online with
River's k-means over their behaviour (free of Faust).

The offline :class:`~stream.models.behaviour.BehaviourSegmenter`, run on live events with its
state in Redis (:mod:`stream.store.behaviour_state`) so every worker clusters alike and a
crash loses nothing applied. Per event with a signal (click, dwell, skip) of a user whose
profile names no segment:

* the user's behaviour (events, dwell and skip moving averages) and the shared counters
  and feature sums (for standardising) are updated;
* with ``min_events`` events, the user's vector (activity, dwell, skip, and taste: the
  user's MF row through a fixed seeded projection) goes to the warm-up until ``warmup``
  vectors seed the centres (k-means++), then to ``river.cluster.KMeans.learn_predict_one``
  (standardised): its closest centre moves towards it;
* the proposed cluster becomes the user's segment ``behaviour-<j>`` after ``hysteresis``
  proposals in a row (a move, counted).

A batch loads the clusterer, runs its events in order, and hands the users' new fields,
counter changes and centre moves (or the seeded centres) to the batch's apply call. The
segment a batch uses for a user is the one they had when it started.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from stream.contract import Event
from stream.models.behaviour import (BehaviourSegmenter, behaviour_vector, centre_label, kmeans_pp, settle,
                                     update_stats)
from stream.signals import signal_weight
from stream.store.behaviour_state import USER_BEHAVIOUR_FIELDS, load_behaviour
from stream.store.keys import Keys

__all__ = ["BehaviourSegments", "BehaviourUpdates", "Clusterer"]

log = logging.getLogger(__name__)


@dataclass
class Clusterer:
    """The shared clusterer as loaded, then as this batch changes it."""

    n: float
    events: float
    users: float
    sums: np.ndarray
    sumsq: np.ndarray
    centres: np.ndarray | None  # (n_clusters, features) standardised; None before seeding
    warmup: list[list[float]]

    def standardise(self, x: np.ndarray) -> np.ndarray:
        mean = self.sums / self.n
        var = np.maximum(self.sumsq - self.n * mean * mean, 0.0) / max(self.n - 1, 1)
        std = np.sqrt(var)
        return (x - mean) / np.where(std > 0, std, 1.0)


@dataclass
class BehaviourUpdates:
    users: dict[str, list] = field(default_factory=dict)  # user -> USER_BEHAVIOUR_FIELDS values
    add: dict[str, float] = field(default_factory=dict)  # counters and sums: changes
    moves: dict[str, float] = field(default_factory=dict)  # centre coordinates: changes
    warmup: list[list[float]] = field(default_factory=list)
    centres: dict[str, float] = field(default_factory=dict)  # set when this batch seeded them
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (user, from, to)

    def script_args(self) -> dict:
        flat = lambda d: [x for k, v in sorted(d.items()) for x in (k, v)]  # noqa: E731
        return {"behaviour": {
            "users": [[u, *(x for f, v in zip(USER_BEHAVIOUR_FIELDS, values) for x in (f, v))]
                      for u, values in sorted(self.users.items())],
            "add": flat(self.add), "moves": flat(self.moves), "centres": flat(self.centres),
            "warmup": [json.dumps(v) for v in self.warmup],
        }}


def _num(value, default: float = 0.0) -> float:
    return default if value is None or value == "" else float(value)


class BehaviourSegments:
    """Assigns behaviour segments for the ingest pipeline; ``params`` are BehaviourSegmenter's."""

    def __init__(self, redis, keys: Keys, metrics, *, n_factors: int = 32, **params) -> None:
        # the offline segmenter holds (and checks) the parameters; its River import happens now,
        # at start, not in the first batch
        self.spec = BehaviourSegmenter(**params)
        self.redis = redis
        self.keys = keys
        self.metrics = metrics
        self.features = self.spec.features
        rng = np.random.default_rng(self.spec.seed)  # as the offline BehaviourFeed's projection
        self.projection = rng.normal(0.0, 1.0 / math.sqrt(n_factors), (n_factors, self.spec.taste_dims))
        self._labels: dict[str, str] = {}

    fields = USER_BEHAVIOUR_FIELDS

    segment_id = staticmethod(BehaviourSegmenter.segment_id)

    @staticmethod
    def segment_of(values: list | None) -> str | None:
        """The user's behaviour segment from their loaded fields (None: not assigned yet)."""
        return values[3] if values and values[3] else None

    async def load(self) -> Clusterer:
        model, seeded, warmup = await load_behaviour(self.redis, self.keys)
        f = self.features
        centres = None
        if seeded:
            centres = np.array([[model.get(f"c{j}:{name}", 0.0) for name in f] for j in range(self.spec.n_clusters)])
        return Clusterer(model.get("n", 0.0), model.get("events", 0.0), model.get("users", 0.0),
                         np.array([model.get(f"sum:{name}", 0.0) for name in f]),
                         np.array([model.get(f"sumsq:{name}", 0.0) for name in f]), centres, warmup)

    def _taste(self, state) -> np.ndarray | None:
        if not self.spec.taste_dims:
            return None
        if state is None:
            return np.zeros(self.spec.taste_dims)
        vector = np.asarray(state.vector, dtype=np.float64)
        if len(vector) != self.projection.shape[0]:
            return np.zeros(self.spec.taste_dims)
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector) @ self.projection

    def learn(self, events: list[Event], behaviour: dict[str, list], states: dict, profiled: set[str],
              model: Clusterer) -> BehaviourUpdates:
        """Run the batch's fresh events through the clusterer (``model`` changes in place);
        users in ``profiled`` have a profile segment and are left out."""
        from river import cluster

        out = BehaviourUpdates()
        start = (model.n, model.events, model.users, model.sums.copy(), model.sumsq.copy())
        centres0 = None if model.centres is None else model.centres.copy()
        km = None
        users: dict[str, list] = {}
        for ev in events:
            w = signal_weight(ev)
            if w == 0 or ev.user_id in profiled:
                continue
            uid = ev.user_id
            values = users.get(uid)
            if values is None:
                raw = behaviour.get(uid) or [None] * len(USER_BEHAVIOUR_FIELDS)
                values = users[uid] = [_num(raw[0]), None if raw[1] in (None, "") else float(raw[1]), _num(raw[2]),
                                       raw[3] or None, raw[4] or None, int(_num(raw[5]))]
            stats = values[:3] if values[0] > 0 else None
            if stats is None:
                model.users += 1
            stats = update_stats(stats, w, self.spec.memory)
            values[:3] = stats
            model.events += 1
            x = behaviour_vector(stats, model.events / model.users, self._taste(states.get(uid)), self.spec.taste_dims)
            model.n += 1
            model.sums += x
            model.sumsq += x * x
            if stats[0] < self.spec.min_events:
                continue
            if model.centres is None:
                model.warmup.append(x.tolist())
                out.warmup.append(x.tolist())
                if len(model.warmup) < self.spec.warmup:
                    continue
                z = model.standardise(np.array(model.warmup[: self.spec.warmup]))
                model.centres = z[kmeans_pp(z, self.spec.n_clusters, self.spec.seed)].copy()
                out.warmup = []
            if km is None:
                km = cluster.KMeans(n_clusters=self.spec.n_clusters, halflife=self.spec.halflife, mu=0.0, sigma=1.0,
                                    seed=self.spec.seed)
                for j in range(self.spec.n_clusters):
                    km.centers[j].update(zip(self.features, model.centres[j].tolist()))
            j = km.learn_predict_one(dict(zip(self.features, model.standardise(x).tolist())))
            pending = (values[4], values[5]) if values[4] else None
            current = values[3]
            segment, pending = settle(current, pending, self.segment_id(j), self.spec.hysteresis)
            values[3], values[4], values[5] = segment, pending[0] if pending else "", pending[1] if pending else 0
            if current is not None and segment != current:
                out.moved.append((uid, current, segment))
        if km is not None:
            model.centres = np.array([[km.centers[j][name] for name in self.features]
                                      for j in range(self.spec.n_clusters)])
        n0, e0, u0, s0, q0 = start
        out.add = {"n": model.n - n0, "events": model.events - e0, "users": model.users - u0}
        out.add.update({f"sum:{name}": float(v) for name, v in zip(self.features, model.sums - s0)})
        out.add.update({f"sumsq:{name}": float(v) for name, v in zip(self.features, model.sumsq - q0)})
        out.add = {k: v for k, v in out.add.items() if v != 0.0}
        if model.centres is not None:
            if centres0 is None:  # seeded in this batch: the centres as they stand now
                out.centres = {f"c{j}:{name}": float(model.centres[j, i])
                               for j in range(self.spec.n_clusters) for i, name in enumerate(self.features)}
            else:
                d = model.centres - centres0
                out.moves = {f"c{j}:{name}": float(d[j, i]) for j in range(self.spec.n_clusters)
                             for i, name in enumerate(self.features) if d[j, i] != 0.0}
        out.users = {u: [repr(v[0]), "" if v[1] is None else repr(v[1]), repr(v[2]), v[3] or "", v[4] or "",
                         str(v[5])] for u, v in users.items()}
        return out

    def report(self, updates: BehaviourUpdates, model: Clusterer) -> None:
        """Moves counted and logged; each segment's readable label as a metric."""
        for uid, before, after in updates.moved:
            self.metrics.segment_moves_total.labels("behaviour").inc()
            log.debug("user %s moved from segment %s to %s", uid, before, after)
        if updates.moved:
            log.info("behaviour segments: %d users moved in this batch", len(updates.moved))
        if model.centres is None:
            return
        for j in range(self.spec.n_clusters):
            segment = self.segment_id(j)
            label = centre_label(*model.centres[j, :3].tolist())
            old = self._labels.get(segment)
            if old != label:
                if old is not None:
                    self.metrics.behaviour_segment_label.remove(segment, old)
                self.metrics.behaviour_segment_label.labels(segment, label).set(1)
                self._labels[segment] = label
