"""The segment models inside the worker: River re-rankers over the MF model, guarded (free of Faust).

The offline :class:`~stream.models.rerank.SegmentedRanker`, run on live events:

* **candidates**: a user's MF top ``n_candidates`` (seen items left out), in MF order, with
  features ``global`` (the MF score), ``popularity`` (log1p of the item's positive weight in
  the MF model) and ``seg_pop`` (log1p of the item's decayed popularity in the user's
  segment, from Redis), min-max scaled over the list;
* **layers**: River logistic regressions, a shared one and one per segment stacked on it
  (:class:`~stream.models.segment_layers.SegmentLayers`), which start as the global ranking
  (transfer) and learn pairwise from each positive event against ``n_negatives`` candidates;
* **guard**: each prequential trial scores the segment layer's top-K and the MF top-K on
  the same click; while the segment layer does worse beyond noise, the segment is served
  the MF ranking (:class:`~stream.models.guard.SegmentGuard`'s rule).

Their state is shared by every worker and changed in the batch's atomic apply call
(:mod:`stream.store.segment_state`): a batch loads the layers' weights and the guards'
choices, learns, and hands back weight changes and trials to apply with its events.
"""

from __future__ import annotations

import inspect
import json
import logging
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from stream.contract import Event
from stream.models.rerank import SegmentedRanker
from stream.models.segment_layers import SegmentLayers
from stream.models.sharded import ShardedMF, UserState
from stream.signals import signal_weight
from stream.store.keys import Keys
from stream.store.segment_state import SEGMENT_POPULARITY_LUA, SHARED_LAYER, SegmentUpdates, load_segment_state

__all__ = ["SegmentModels", "SegmentView", "Candidates", "rerank_params", "COLUMNS"]

log = logging.getLogger(__name__)

#: The candidate features, in column order.
COLUMNS = ("global", "popularity", "seg_pop")

_KEYS = ("n_candidates", "learning_rate", "l2", "n_negatives", "init_weight", "shared", "shared_learning_rate",
         "guard_window", "guard_margin", "guard_min_trials", "guard_z", "segment_params", "seed")


def rerank_params(config: dict | None) -> dict[str, Any]:
    """The re-ranker's parameters: SegmentedRanker's defaults, overridden by a SegmentedRanker
    configuration (``streamrec tune --space rerank`` writes its ``segment_params``).

    >>> p = rerank_params({"model": "SegmentedRanker", "params": {"n_candidates": 50,
    ...                    "segment_params": {"segment:kids": {"learning_rate": 0.1}}}})
    >>> p["n_candidates"], p["learning_rate"], p["segment_params"]
    (50, 0.02, {'segment:kids': {'learning_rate': 0.1}})
    """
    defaults = {name: p.default for name, p in inspect.signature(SegmentedRanker.__init__).parameters.items()
                if name in _KEYS}
    given = config["params"] if config is not None and config.get("model") == "SegmentedRanker" else {}
    return {**defaults, **{name: value for name, value in given.items() if name in _KEYS}}


@dataclass
class Candidates:
    """A user's candidates as of the batch's start, and both rankings of them."""

    segment: str
    ids: list[str]  # MF order
    mf: np.ndarray  # MF scores
    X: np.ndarray  # scaled features (len(ids), len(COLUMNS))
    shared: np.ndarray  # shared layer logits
    seg: np.ndarray  # segment layer logits
    order: np.ndarray  # positions in ids, best first by the segment layer

    def global_top(self, k: int) -> list[tuple[str, float]]:
        return [(self.ids[j], float(self.mf[j])) for j in range(min(k, len(self.ids)))]

    def segment_top(self, k: int) -> list[tuple[str, float]]:
        return [(self.ids[j], float(self.seg[j])) for j in self.order[:k].tolist()]


@dataclass
class SegmentView:
    """The segment models as loaded for one batch: River layers and the guards' choices."""

    layers: SegmentLayers
    start: dict[str, dict[str, float]]  # layer -> weights as loaded (to diff after learning)
    serving: dict[str, bool]  # segment -> serves its own model (False: the MF ranking)

    def _layer(self, name: str):
        return self.layers.shared if name == SHARED_LAYER else self.layers.layers[name]

    def changes(self) -> dict[str, dict[str, float]]:
        """Per layer, how far learning moved each weight since the load."""
        out = {}
        for name, before in self.start.items():
            layer = self._layer(name)
            after = layer.weights
            diff = {f: after.get(f, 0.0) - before.get(f, 0.0) for f in set(after) | set(before)}
            diff = {f: d for f, d in diff.items() if d != 0.0}
            if diff:
                out[name] = diff
        return out


class SegmentModels:
    """Loads, applies and learns the segment re-rankers for the ingest pipeline.

    Parameters
    ----------
    mf
        The worker's MF model (candidates and their MF scores and popularity).
    redis, keys
        The store (segment popularity, the models' shared state).
    params
        :func:`rerank_params`.
    metrics
        :class:`stream.metrics.Metrics`.
    """

    def __init__(self, mf: ShardedMF, redis, keys: Keys, params: dict[str, Any], metrics) -> None:
        self.mf = mf
        self.redis = redis
        self.keys = keys
        self.params = params
        self.metrics = metrics
        self.segment_params = params.get("segment_params") or {}
        self._known: set[str] = set()  # segments whose series exist
        self._popularity = redis.register_script(SEGMENT_POPULARITY_LUA)
        import river.linear_model  # noqa: F401  (imported now, at start: it takes ~2 s, not the first batch's time)

    def param(self, segment: str, name: str) -> Any:
        return self.segment_params.get(segment, {}).get(name, self.params[name])

    def guard_params(self, segment: str) -> list:
        window = int(self.param(segment, "guard_window"))
        return [window, min(int(self.param(segment, "guard_min_trials")), window),
                float(self.param(segment, "guard_margin")), float(self.param(segment, "guard_z")), 0.0]

    async def view(self, segments: Iterable[str]) -> SegmentView:
        """The shared layer and ``segments``' layers with their learned weights, and the guards' choices."""
        segments = sorted(set(segments))
        changes, serving = await load_segment_state(self.redis, self.keys, segments)
        p = self.params
        layers = SegmentLayers(COLUMNS, self.param, p["shared"], p["shared_learning_rate"] or p["learning_rate"],
                               p["init_weight"], pairwise=True)
        start = {}
        for name in ([SHARED_LAYER] if layers.shared is not None else []) + segments:
            layer = layers.shared if name == SHARED_LAYER else layers.layer(name)
            for feature, change in changes.get(name, {}).items():
                layer._weights[feature] = layer._weights.get(feature, 0.0) + change
            start[name] = layer.weights
        for segment in segments:
            if segment not in self._known:  # every series exists from the segment's first batch
                self._known.add(segment)
                for to in ("segment", "global"):
                    self.metrics.segment_guard_switches_total.labels(segment, to).inc(0)
                for ranking in ("segment", "global"):
                    self.metrics.prequential_ranking_hits_total.labels(segment, ranking).inc(0)
            self.metrics.segment_serving.labels(segment).set(1 if serving[segment] else 0)
        return SegmentView(layers, start, serving)

    async def prepare(self, users: list[tuple[str, UserState, list[str], str]],
                      k: int) -> tuple[SegmentView, dict[str, Candidates]]:
        """The view of these (user, row, seen items, segment)'s segments and their candidates."""
        view = await self.view({segment for _, _, _, segment in users})
        return view, await self.candidates(users, view, k)

    async def candidates(self, users: list[tuple[str, UserState, list[str], str]],
                         view: SegmentView, k: int) -> dict[str, Candidates]:
        """Candidates and both rankings for each (user, row, seen items, segment): the MF scores
        in one matrix product, the features and layers per segment over all its users at once."""
        if not users:
            return {}
        n = max(max(int(self.param(segment, "n_candidates")) for _, _, _, segment in users), k)
        tops = self.mf.top_many([state for _, state, _, _ in users], n, [seen for _, _, seen, _ in users])
        ids = self.mf.item_ids
        picked = {}
        for (uid, _, _, segment), (rows, mf) in zip(users, tops):
            size = max(int(self.param(segment, "n_candidates")), k)  # this segment's (n is the largest)
            if len(rows):
                picked[uid] = (segment, rows[:size], mf[:size].astype(np.float64))
        if not picked:
            return {}
        wanted: dict[str, dict[int, None]] = {}  # segment -> its users' candidate rows, each once
        for segment, rows, _ in picked.values():
            wanted.setdefault(segment, {}).update(dict.fromkeys(rows.tolist()))
        order = sorted(wanted)
        arg = json.dumps({"prefix": self.keys.prefix, "segments": [[seg, [ids[r] for r in wanted[seg]]]
                                                                     for seg in order]}, separators=(",", ":"))
        answers = await self._popularity(args=[arg])
        seg_pop = np.zeros(len(ids))
        pop = np.log1p(np.maximum(self.mf.model._pop[: len(ids)], 0.0))
        out = {}
        for seg, scores in zip(order, answers):
            seg_pop[list(wanted[seg])] = [float(x) if x else 0.0 for x in scores]
            seg_pop_log = np.log1p(np.maximum(seg_pop, 0.0))
            groups: dict[int, list[str]] = {}  # the segment's users by candidate count
            for uid, (segment, rows, _) in picked.items():
                if segment == seg:
                    groups.setdefault(len(rows), []).append(uid)
            for size, uids in groups.items():
                rows = np.stack([picked[u][1] for u in uids])  # (U, size)
                mf = np.stack([picked[u][2] for u in uids])
                R = np.stack([mf, pop[rows], seg_pop_log[rows]], axis=2)  # (U, size, F)
                lo = R.min(axis=1, keepdims=True)
                span = R.max(axis=1, keepdims=True) - lo
                X = (R - lo) / np.where(span > 0, span, 1.0)
                shared, logits = view.layers.scores(seg, X.reshape(-1, len(COLUMNS)))
                shared, logits = shared.reshape(len(uids), size), logits.reshape(len(uids), size)
                orders = np.argsort(-logits, axis=1, kind="stable")
                for j, uid in enumerate(uids):
                    out[uid] = Candidates(seg, [ids[r] for r in rows[j].tolist()], mf[j], X[j], shared[j], logits[j],
                                          orders[j])
        return out

    def served(self, c: Candidates, view: SegmentView, k: int) -> tuple[list[tuple[str, float]], bool]:
        """The served top-k, and whether the segment layer ordered it (else the MF ranking)."""
        if view.serving.get(c.segment, True):
            return c.segment_top(k), True
        return c.global_top(k), False

    def trials(self, trials: list[tuple[int, Event]], cands: dict[str, Candidates], k: int,
               updates: SegmentUpdates) -> None:
        """Score both rankings on each trial (event position in the batch, click) for the guards."""
        for pos, ev in trials:
            c = cands.get(ev.user_id)
            if c is None:
                continue
            seg_hit = any(i == ev.item_id for i, _ in c.segment_top(k))
            glob_hit = ev.item_id in c.ids[:k]
            updates.trials.setdefault(c.segment, []).append((pos, int(seg_hit) - int(glob_hit)))
            updates.guard_params.setdefault(c.segment, self.guard_params(c.segment))
            for ranking, hit in (("segment", seg_hit), ("global", glob_hit)):
                if hit:
                    self.metrics.prequential_ranking_hits_total.labels(c.segment, ranking).inc()

    def learn(self, events: list[Event], cands: dict[str, Candidates], view: SegmentView,
              updates: SegmentUpdates) -> Counter:
        """Pairwise examples from each positive event whose item is among the user's candidates
        (against ``n_negatives`` other candidates, drawn by a seed of the event id); the layers
        learn them with River and the weight changes go to ``updates``. Returns examples per segment."""
        learned: Counter = Counter()
        seed = int(self.params["seed"])
        for ev in events:
            c = cands.get(ev.user_id)
            if c is None or signal_weight(ev) <= 0:
                continue
            try:
                p = c.ids.index(ev.item_id)
            except ValueError:
                continue  # outside the candidates: re-ordering them cannot reach it
            pool = np.delete(np.arange(len(c.ids)), p)
            n_neg = min(int(self.param(c.segment, "n_negatives")), len(pool))
            if n_neg == 0:
                continue
            rng = np.random.default_rng([seed, zlib.crc32(ev.event_id.encode())])
            negatives = rng.choice(pool, size=n_neg, replace=False).tolist()
            view.layers.learn(c.segment, [(c.X[p] - c.X[j], c.shared[p] - c.shared[j], {}, True) for j in negatives])
            learned[c.segment] += n_neg
        updates.layers = view.changes()
        for segment, n in learned.items():
            self.metrics.rerank_examples_total.labels(segment).inc(n)
        return learned

    def report(self, updates: SegmentUpdates) -> None:
        """Metrics and log lines for the guards the batch changed."""
        for g in updates.results:
            self.metrics.segment_serving.labels(g.segment).set(1 if g.serving == "segment" else 0)
            self.metrics.segment_hit_difference.labels(g.segment).set(g.mean_difference)
            for s in g.switches:
                self.metrics.segment_guard_switches_total.labels(g.segment, s["to"]).inc()
                log.warning("segment guard: segment %s now serves the %s ranking (trial %d: mean hit difference "
                            "segment - global %+.4f, standard error %.4f, over %d trials)", g.segment,
                            "segment model's" if s["to"] == "segment" else "global (MF)", s["trial"],
                            s["mean_difference"], s["standard_error"], s["window"])
