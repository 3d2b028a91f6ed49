"""The prequential protocol (test, then train) over any :class:`~stream.models.base.Ranker`.

Events in order, in micro-batches. Within a batch every ranker scores each trial as the user's
list stood just before that event, then learns (the engine updates each user's history and
seen items event by event, its MF rows and item side per batch: stream/engine/batch.py). Which
events are trials, and their weights, is :mod:`stream.signals`' one rule:

    trial      a click of a user with an earlier event, on an item new to them
    hit        the clicked item is in the top ``k`` the user would have been served
    recall@k   hits / trials;  NDCG@k: mean of 1 / log2(rank + 1), 0 for a miss
    coverage   distinct items served in trials / distinct items in the stream
    ILD@k      mean over trials of the list's intra-list diversity (mean pairwise 1 − cosine,
               :mod:`stream.models.diversity`), every ranker's lists measured in one reference
               item space (``evaluate``: the served engine's MF rows after the batch)

The batches are either fixed-size slices, or the boundaries a worker logged
(``evaluate --through-worker``), so the offline side replays exactly what the worker applied.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

import numpy as np

from stream.contract import Event
from stream.models.base import Ranker, Trial
from stream.signals import event_order, is_trial, marks_seen, signal_weight

__all__ = ["HitCounts", "PrequentialMetrics", "PerEvent", "prequential", "format_table", "as_json", "fixed_batches"]


@dataclass
class HitCounts:
    """Trials, hits and the NDCG gain summed over them: recall and NDCG (the worker's metrics
    carry the same three counts)."""

    trials: int = 0
    hits: int = 0
    ndcg_sum: float = 0.0

    @property
    def recall(self) -> float:
        return self.hits / self.trials if self.trials else 0.0

    @property
    def ndcg(self) -> float:
        return self.ndcg_sum / self.trials if self.trials else 0.0


@dataclass
class PrequentialMetrics(HitCounts):
    """Running recall@k, NDCG@k and coverage of one ranker.

    Examples
    --------
    >>> m = PrequentialMetrics(k=10)
    >>> m.record(["a", "b", "c"], "b")
    >>> m.record(["a", "b", "c"], "z")
    >>> m.recall, round(m.ndcg, 3), m.coverage(catalogue_size=6)
    (0.5, 0.315, 0.5)
    >>> m.record_diversity([0.5, float("nan"), 0.25]); m.ild  # a list too short for pairs is left out
    0.375
    """

    k: int = 10
    recommended: set = field(default_factory=set)
    seconds: float = 0.0  # in the ranker's steps (scoring and learning)
    events: int = 0
    ild_sum: float = 0.0
    ild_lists: int = 0

    def record_diversity(self, ild: Sequence[float]) -> None:
        """Add trials' lists' ILD (NaN: a list of fewer than two items, not counted)."""
        ild = np.asarray(ild, dtype=np.float64)
        ok = np.isfinite(ild)
        self.ild_sum += float(ild[ok].sum())
        self.ild_lists += int(ok.sum())

    @property
    def ild(self) -> float:
        """Mean ILD@k over the trials' lists measured (NaN: none)."""
        return self.ild_sum / self.ild_lists if self.ild_lists else float("nan")

    def record(self, ranked: list[str], target: str) -> None:
        self.trials += 1
        top = ranked[: self.k]
        self.recommended.update(top)
        if target in top:
            self.hits += 1
            self.ndcg_sum += 1.0 / math.log2(top.index(target) + 2)

    def coverage(self, catalogue_size: int) -> float:
        return len(self.recommended) / catalogue_size if catalogue_size else 0.0

    @property
    def throughput(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


class PerEvent(Ranker):
    """A model with ``learn_one(user, item, weight, ts)`` and ``rank(user, k)`` (e.g. River's
    FunkMF) as a :class:`Ranker`, event by event under the one trial rule.

    A batch is taken in event-time order (:func:`stream.signals.event_order`, as the engine
    takes it). Impressions teach nothing and mark nothing seen (as in the engine); other events
    are learned with their signal weight (``marks_seen`` events mark their item seen).

    Examples
    --------
    >>> from stream.contract import validate_event
    >>> class Last:  # recommends the last item anyone clicked
    ...     last = []
    ...     def learn_one(self, u, i, w, ts): self.last = [i]
    ...     def rank(self, u, k): return self.last
    >>> r = PerEvent(Last())
    >>> e = lambda n, u, i: validate_event("click", {"event_id": f"e{n}", "user_id": u, "item_id": i, "ts": n, "schema": "v1"})
    >>> r.step([e(0, "a", "x"), e(1, "a", "y"), e(2, "b", "y"), e(3, "b", "z")])
    [Trial(position=1, user_id='a', item_id='y', ranked=['x'], segment='all'), Trial(position=3, user_id='b', item_id='z', ranked=['y'], segment='all')]
    """

    def __init__(self, model: Any, k: int = 10, trial_share: float = 1.0) -> None:
        self.model = model
        self.k = k
        self.trial_share = trial_share  # the share of trials scored (stream.signals.scored)
        self._events: dict[str, int] = {}
        self._seen: dict[str, set[str]] = {}

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        from stream.evaluation.baselines import RiverFunkMF  # baselines imports this module

        return {"model": RiverFunkMF(n_factors=4, seed=1)}

    def step(self, events: Sequence[Event]) -> list[Trial]:
        trials = []
        for n in event_order(events):  # the batch in event-time order, as the engine applies it
            ev = events[n]
            seen = self._seen.setdefault(ev.user_id, set())
            count = self._events.get(ev.user_id, 0)
            if is_trial(ev, count, seen, self.trial_share):
                trials.append(Trial(n, ev.user_id, ev.item_id, list(self.model.rank(ev.user_id, self.k))))
            self._events[ev.user_id] = count + 1
            if marks_seen(ev):
                seen.add(ev.item_id)
                self.model.learn_one(ev.user_id, ev.item_id, signal_weight(ev), ev.ts)
        return trials

    def recommend(self, user_id: str, k: int = 10) -> list[str]:
        return list(self.model.rank(user_id, k))


def fixed_batches(n_events: int, batch_size: int) -> list[range]:
    """Consecutive slices of ``batch_size`` events.

    >>> [list(b) for b in fixed_batches(5, 2)]
    [[0, 1], [2, 3], [4]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [range(s, min(s + batch_size, n_events)) for s in range(0, n_events, batch_size)]


def prequential(
    events: Sequence[Event],
    rankers: Mapping[str, Ranker],
    batches: Iterable[Sequence[int]],
    k: int = 10,
    progress_every: int = 10_000,
    progress: TextIO | None = sys.stderr,
    diversity: Callable[[list[list[str]]], np.ndarray] | None = None,
) -> tuple[dict[str, PrequentialMetrics], int]:
    """Run the protocol; returns per-ranker metrics and the catalogue size (distinct items).

    ``batches``: index lists into ``events`` (every event once, in order, for a fair run).
    ``diversity``: the ILD of lists of item ids (one reference for every ranker), applied to
    each batch's trials' top-``k`` after every ranker has stepped; None: no ILD.
    """
    metrics = {name: PrequentialMetrics(k=k) for name in rankers}
    catalogue: set[str] = set()
    started = time.perf_counter()
    done = next_report = 0
    next_report = progress_every
    for batch in batches:
        chunk = [events[i] for i in batch]
        lists: dict[str, list[list[str]]] = {}
        for name, ranker in rankers.items():
            t0 = time.perf_counter()
            trials = ranker.step(chunk)
            m = metrics[name]
            m.seconds += time.perf_counter() - t0
            m.events += len(chunk)
            for t in trials:
                m.record(t.ranked, t.item_id)
            lists[name] = [t.ranked[:k] for t in trials]
        if diversity is not None:
            for name, ranked in lists.items():
                if ranked:
                    metrics[name].record_diversity(diversity(ranked))
        catalogue.update(ev.item_id for ev in chunk)
        done += len(chunk)
        if progress is not None and progress_every and done >= next_report:
            next_report += progress_every
            recalls = "  ".join(f"{name}={m.recall:.3f}" for name, m in metrics.items())
            print(f"[prequential] {done:,} events, {time.perf_counter() - started:.0f}s, recall@{k}: {recalls}",
                  file=progress, flush=True)
    return metrics, len(catalogue)


def format_table(metrics: Mapping[str, PrequentialMetrics], catalogue_size: int, k: int = 10) -> str:
    """A Markdown table: ranker, trials, recall@k, NDCG@k, ILD@k (– when not measured), coverage, events/s."""
    lines = [
        f"| model | trials | recall@{k} | NDCG@{k} | ILD@{k} | coverage | events/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in metrics.items():
        ild = f"{m.ild:.4f}" if m.ild_lists else "–"
        lines.append(f"| {name} | {m.trials} | {m.recall:.4f} | {m.ndcg:.4f} | {ild} | {m.coverage(catalogue_size):.3f} "
                     f"| {m.throughput:,.0f} |")
    return "\n".join(lines)


def as_json(metrics: Mapping[str, PrequentialMetrics], catalogue_size: int) -> dict[str, dict[str, Any]]:
    """Each ranker's figures as plain data (``evaluate --json``); None for a figure not measured
    (ILD of no list, events/s of no time)."""
    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {name: {"trials": m.trials, "hits": m.hits, "recall": m.recall, "ndcg": m.ndcg, "ild": finite(m.ild),
                   "coverage": m.coverage(catalogue_size), "events_per_second": finite(m.throughput)}
            for name, m in metrics.items()}
