"""The prequential protocol (test, then train) over any models with the common model shape.

For each positive event (u, i) whose user has an earlier event and for whom ``i`` is new:
rank every item u has not interacted with before (each model leaves out the user's seen
items), a hit when ``i`` is in the top ``k``; then every model learns from the event.
Every event, positive or not, is learned and marks its item as seen.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, TextIO

__all__ = ["PrequentialMetrics", "MicroBatched", "prequential", "format_table"]


class MicroBatched:
    """Feeds a model in micro-batches, as the worker does, while staying prequential.

    Parts that prefer batches (``OnlineMF``, marked ``prefers_batches = True``) mark each
    event's item as seen at once (a ``learn_many`` with weight 0, which teaches nothing)
    and learn it with the next ``learn_many`` of ``batch_size`` events; rankings in
    between come from their state as of the last flushed batch. The other parts
    (co-occurrence, popularity: cheap per event, and the co-occurrence history must be
    current) learn each event at once. A :class:`~stream.models.HybridRanker` is split
    into its parts that way.

    Examples
    --------
    >>> from stream.models import OnlineMF
    >>> model = MicroBatched(OnlineMF(n_factors=4), batch_size=2)
    >>> model.learn_one("a", "x", 1.0, 0.0)
    >>> model.rank("a", 5), bool(model.model._aQ.any())
    ([], False)
    >>> model.learn_one("b", "y", 1.0, 1.0)
    >>> bool(model.model._aQ.any())
    True
    """

    def __init__(self, model: Any, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"MicroBatched: batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        parts = list(model.parts.values()) if hasattr(model, "parts") else [model]
        self._batched = [p for p in parts if getattr(p, "prefers_batches", False)]
        self._eager = [p for p in parts if not getattr(p, "prefers_batches", False)]
        self._buffer: list[tuple[str, str, float, float]] = []  # (user_id, item_id, weight, ts)

    def learn_one(self, user_id: str, item_id: str, weight: float = 1.0, ts: float | None = None) -> None:
        if self.batch_size == 1 or not self._batched:
            self.model.learn_one(user_id, item_id, weight, ts)
            return
        stamp = [0.0 if ts is None else ts]
        for part in self._batched:
            part.learn_many([user_id], [item_id], [0.0], stamp)
        for part in self._eager:
            part.learn_many([user_id], [item_id], [weight], stamp)
        self._buffer.append((user_id, item_id, weight, stamp[0]))
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            users, items, weights, stamps = (list(c) for c in zip(*self._buffer))
            self._buffer = []
            for part in self._batched:
                part.learn_many(users, items, weights, stamps)

    def rank(self, user_id: str, k: int = 10) -> list[str]:
        return self.model.rank(user_id, k)


@dataclass
class PrequentialMetrics:
    """Running recall@k, NDCG@k and coverage of one model (usable inside the worker too).

    Examples
    --------
    >>> m = PrequentialMetrics(k=10)
    >>> m.record(["a", "b", "c"], "b")
    >>> m.record(["a", "b", "c"], "z")
    >>> m.recall, round(m.ndcg, 3), m.coverage(catalogue_size=6)
    (0.5, 0.315, 0.5)
    """

    k: int = 10
    trials: int = 0
    hits: int = 0
    ndcg_sum: float = 0.0
    recommended: set = field(default_factory=set)
    learn_seconds: float = 0.0
    learn_events: int = 0
    rank_seconds: float = 0.0

    def record(self, ranked: list[str], target: str) -> None:
        self.trials += 1
        top = ranked[: self.k]
        self.recommended.update(top)
        if target in top:
            self.hits += 1
            self.ndcg_sum += 1.0 / math.log2(top.index(target) + 2)

    @property
    def recall(self) -> float:
        return self.hits / self.trials if self.trials else 0.0

    @property
    def ndcg(self) -> float:
        return self.ndcg_sum / self.trials if self.trials else 0.0

    def coverage(self, catalogue_size: int) -> float:
        return len(self.recommended) / catalogue_size if catalogue_size else 0.0

    @property
    def throughput(self) -> float:
        return self.learn_events / self.learn_seconds if self.learn_seconds > 0 else float("nan")


def prequential(
    events: Iterable[Any],
    models: Mapping[str, Any],
    k: int = 10,
    progress_every: int = 10_000,
    progress: TextIO | None = sys.stderr,
    limit: int | None = None,
) -> tuple[dict[str, PrequentialMetrics], int]:
    """Run the protocol; returns per-model metrics and the catalogue size (distinct items).

    ``events`` yields objects with ``user_id``, ``item_id``, ``weight``, ``ts`` and
    ``positive`` (see :class:`stream.evaluation.datasets.EvalEvent`).
    """
    metrics = {name: PrequentialMetrics(k=k) for name in models}
    seen: dict[str, set[str]] = {}
    catalogue: set[str] = set()
    start = time.perf_counter()
    n = 0
    for n, e in enumerate(events, 1):
        history = seen.get(e.user_id)
        if e.positive and history and e.item_id not in history:
            for name, model in models.items():
                t0 = time.perf_counter()
                ranked = model.rank(e.user_id, k)
                metrics[name].rank_seconds += time.perf_counter() - t0
                metrics[name].record(ranked, e.item_id)
        for name, model in models.items():
            t0 = time.perf_counter()
            model.learn_one(e.user_id, e.item_id, e.weight, e.ts)
            m = metrics[name]
            m.learn_seconds += time.perf_counter() - t0
            m.learn_events += 1
        if history is None:
            seen[e.user_id] = {e.item_id}
        else:
            history.add(e.item_id)
        catalogue.add(e.item_id)
        if progress is not None and progress_every and n % progress_every == 0:
            elapsed = time.perf_counter() - start
            recalls = "  ".join(f"{name}={m.recall:.3f}" for name, m in metrics.items())
            print(f"[prequential] {n} events, {elapsed:.0f}s, recall@{k}: {recalls}", file=progress, flush=True)
        if limit is not None and n >= limit:
            break
    return metrics, len(catalogue)


def format_table(metrics: Mapping[str, PrequentialMetrics], catalogue_size: int, k: int = 10) -> str:
    """A Markdown table: model, trials, recall@k, NDCG@k, coverage, learning events/s."""
    lines = [
        f"| model | trials | recall@{k} | NDCG@{k} | coverage | learn events/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in metrics.items():
        lines.append(
            f"| {name} | {m.trials} | {m.recall:.4f} | {m.ndcg:.4f} | {m.coverage(catalogue_size):.3f} "
            f"| {m.throughput:,.0f} |"
        )
    return "\n".join(lines)
