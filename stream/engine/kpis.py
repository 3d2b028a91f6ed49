"""A batch step's KPIs: Prometheus metrics and drift observations, from its :class:`StepResult`.

Trials are counted by the engine's one rule (:func:`stream.signals.is_trial`), so the worker's
``streamrec_prequential_*`` metrics and ``streamrec evaluate`` count the same trials.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter

from stream.drift import signal_values
from stream.engine.alerts import DriftWatch
from stream.engine.engine import StepResult
from stream.engine.validate import Record

__all__ = ["Kpis"]

log = logging.getLogger(__name__)


class Kpis:
    """Counts committed steps in ``metrics`` and feeds their KPIs to ``drift`` (when given)."""

    def __init__(self, metrics, drift: DriftWatch | None = None) -> None:
        self.metrics = metrics
        self.drift = drift
        self._segments: set[str] = set()  # segments whose trial series exist
        self._labels: dict[str, str] = {}  # behaviour segment -> its label's series

    def record(self, result: StepResult, records: list[Record]) -> None:
        """``records``: the step's valid records, in the events' order (their Kafka timestamps
        give the freshness histogram)."""
        metrics, drift = self.metrics, self.drift
        now = time.time()
        counts: Counter = Counter()
        dwell: dict[str, list[float]] = {}
        ages: list[float] = []
        observations: list[tuple[str, str, float]] = []
        segments = result.segments
        for rec, ev, fresh in zip(records, result.events, result.fresh):
            if not fresh:
                continue
            seg = segments[ev.user_id]
            counts[(ev.type, seg)] += 1
            if ev.type == "dwell":
                dwell.setdefault(seg, []).append(float(ev.seconds or 0.0))
            if rec.timestamp:
                ages.append(now - rec.timestamp)
            if drift is not None:
                observations += [(seg, signal, value) for signal, value in signal_values(ev.type, ev.seconds)]
        if result.duplicates:
            metrics.duplicate_events_total.inc(result.duplicates)
        for (etype, seg), n in counts.items():
            metrics.events_total.labels(etype, seg).inc(n)
        for seg, values in dwell.items():
            observe = metrics.dwell_seconds.labels(seg).observe
            for v in values:
                observe(v)
        observe = metrics.event_to_applied_seconds.observe
        for age in ages:
            observe(max(0.0, age))
        self._trials(result.trials)
        if drift is not None:
            observations += [(t.segment, "hit_rate", 1.0 if t.rank is not None else 0.0) for t in result.trials]
            drift.observe_many(observations)
        learned = result.learned
        for seg, guard in learned.guards.items():
            metrics.segment_serving.labels(seg).set(1 if guard.serving_segment else 0)
            metrics.segment_hit_difference.labels(seg).set(guard.mean_difference)
        for s in learned.switches:
            metrics.segment_guard_switches_total.labels(s["segment"], s["to"]).inc()
        for seg, n in learned.examples.items():
            metrics.rerank_examples_total.labels(seg).inc(n)
        for _ in learned.moved:
            metrics.segment_moves_total.labels("behaviour").inc()
        if learned.moved:
            log.info("behaviour segments: %d users moved in this batch", len(learned.moved))
        for seg, label in learned.labels.items():
            self._label(seg, label)
        if learned.loss is not None:
            metrics.model_loss.observe(learned.loss)
        metrics.model_events_learned_total.inc(learned.learned)

    def _trials(self, trials) -> None:
        """The trials' counters, summed per segment first (one increment per series a batch)."""
        metrics = self.metrics
        sums: dict[str, list] = {}  # segment -> [trials, hits, ndcg gain, segment hits, global hits]
        for t in trials:
            s = sums.get(t.segment)
            if s is None:
                s = sums[t.segment] = [0, 0, 0.0, 0, 0]
            s[0] += 1
            rank = t.rank
            if rank is not None:
                s[1] += 1
                s[2] += 1.0 / math.log2(rank + 1)
            if t.seg_hit is not None:
                s[3] += bool(t.seg_hit)
                s[4] += bool(t.glob_hit)
        for seg, (n, hits, gain, seg_hits, glob_hits) in sums.items():
            if seg not in self._segments:  # every series exists from a segment's first trial
                self._segments.add(seg)
                for ranking in ("segment", "global"):
                    metrics.prequential_ranking_hits_total.labels(seg, ranking).inc(0)
                    metrics.segment_guard_switches_total.labels(seg, ranking).inc(0)
            metrics.prequential_trials_total.labels(seg).inc(n)
            if hits:
                metrics.prequential_hits_total.labels(seg).inc(hits)
                metrics.prequential_ndcg_sum.labels(seg).inc(gain)
            if seg_hits:
                metrics.prequential_ranking_hits_total.labels(seg, "segment").inc(seg_hits)
            if glob_hits:
                metrics.prequential_ranking_hits_total.labels(seg, "global").inc(glob_hits)

    def _label(self, segment: str, label: str) -> None:
        old = self._labels.get(segment)
        if old == label:
            return
        if old is not None:
            try:
                self.metrics.behaviour_segment_label.remove(segment, old)
            except KeyError:
                pass
        self.metrics.behaviour_segment_label.labels(segment, label).set(1)
        self._labels[segment] = label
