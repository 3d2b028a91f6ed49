"""Every Prometheus metric streamrec exports, declared once, in base units.

Dashboards and alert rules (dashboards/) query exactly these names. Metrics are
registered on :data:`REGISTRY`, a registry of streamrec's own, so tests can build
a fresh one with :func:`build` and the worker's ``/metrics`` shows nothing foreign.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

__all__ = ["Metrics", "build", "METRICS", "REGISTRY", "ThreadCpu"]

#: Seconds; a micro-batch is 1 ms .. a few seconds.
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Seconds; one HTTP answer.
SERVING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: Seconds from event time to applied (includes producer and queue time).
FRESHNESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Mean weighted logistic loss of a batch's events, before learning from them (nats).
LOSS_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 5.0)
#: Seconds since a vector was last written (user: at ranking; item: when a worker's copy takes it).
AGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)
#: Seconds of dwell.
DWELL_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Intra-list diversity: mean pairwise 1 - cosine, in [0, 2] (1: unrelated on average).
DIVERSITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    events_total: Counter
    invalid_events_total: Counter
    duplicate_events_total: Counter
    dwell_seconds: Histogram
    batch_seconds: Histogram
    batch_events: Histogram
    batch_cpu_seconds: Counter
    event_to_applied_seconds: Histogram
    prequential_trials_total: Counter
    prequential_hits_total: Counter
    prequential_ndcg_sum: Counter
    prequential_ranking_hits_total: Counter
    prequential_items_recommended: Gauge
    items_seen: Gauge
    segment_serving: Gauge
    segment_guard_switches_total: Counter
    segment_hit_difference: Gauge
    rerank_examples_total: Counter
    drift_alerts_total: Counter
    drift_active: Gauge
    recommendations_pushed_total: Counter
    serving_seconds: Histogram
    profiles_total: Counter
    segment_moves_total: Counter
    behaviour_segment_label: Gauge
    items_total: Counter
    worker_up: Gauge
    model_loss: Histogram
    model_events_learned_total: Counter
    item_updates_applied_total: Counter
    model_items: Gauge
    items_initialised_total: Counter
    explored_total: Counter
    embedding_age_seconds: Histogram
    consumer_lag_messages: Gauge
    erasures_total: Counter
    erased_events_dropped_total: Counter
    lists_shown_total: Counter
    lists_clicked_total: Counter
    lists_converted_total: Counter
    list_clicks_total: Counter
    list_purchases_total: Counter
    list_revenue_total: Counter
    list_dwell_seconds_total: Counter
    list_dwell_events_total: Counter
    list_skips_total: Counter
    attribution_unmatched_total: Counter
    experiment_assignments_total: Counter
    list_diversity: Histogram
    pushed_coverage_ratio: Gauge


#: The labels of every attribution KPI: a list's segment, experiment and variant when it was served
#: ("none" outside experiments).
LIST_LABELS = ["segment", "experiment", "variant"]


def build(registry: CollectorRegistry | None = None) -> Metrics:
    """Declare every metric on ``registry`` (a fresh one by default)."""
    r = registry if registry is not None else CollectorRegistry()
    return Metrics(
        registry=r,
        events_total=Counter(
            "streamrec_events_total", "Valid, first-seen events applied, by type and segment.", ["type", "segment"], registry=r
        ),
        invalid_events_total=Counter(
            "streamrec_invalid_events_total", "Messages sent to the dead-letter topic, by reason.", ["reason"], registry=r
        ),
        duplicate_events_total=Counter(
            "streamrec_duplicate_events_total", "Events dropped because their event_id was applied before.", registry=r
        ),
        dwell_seconds=Histogram(
            "streamrec_dwell_seconds", "Dwell time of dwell events, by segment.", ["segment"], buckets=DWELL_BUCKETS, registry=r
        ),
        batch_seconds=Histogram(
            "streamrec_batch_seconds", "Time to process one micro-batch.", buckets=BATCH_BUCKETS, registry=r
        ),
        batch_events=Histogram(
            "streamrec_batch_events", "Messages in one micro-batch.", buckets=(1, 10, 50, 100, 250, 500, 1000, 5000), registry=r
        ),
        batch_cpu_seconds=Counter(
            "streamrec_batch_cpu_seconds_total", "CPU seconds of the event loop's thread while micro-batches were "
            "handled (what other tasks did in a batch's waits included); against streamrec_batch_seconds_sum, the "
            "rest of a batch's time was spent waiting (Redis, Kafka).", registry=r,
        ),
        event_to_applied_seconds=Histogram(
            "streamrec_event_to_applied_seconds",
            "Wall-clock now minus event time when the event's effect reached Redis.",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        ),
        prequential_trials_total=Counter(
            "streamrec_prequential_trials_total",
            "Clicks of users with history on items new to them, each checked against the list the user would have been "
            "served just before it (stream/signals.py's rule, the same as streamrec evaluate's).",
            ["segment"], registry=r,
        ),
        prequential_hits_total=Counter(
            "streamrec_prequential_hits_total",
            "Trials whose clicked item was in the user's top-K (hit rate = hits / trials).",
            ["segment"], registry=r,
        ),
        prequential_ndcg_sum=Counter(
            "streamrec_prequential_ndcg_gain_total",
            "Sum over trials of 1/log2(rank+1) of the clicked item in the top-K, 0 when absent (NDCG = sum / trials).",
            ["segment"], registry=r,
        ),
        prequential_ranking_hits_total=Counter(
            "streamrec_prequential_ranking_hits_total",
            "Trials hit by each ranking scored on them, whichever was served: the segment re-ranker's (ranking=segment) "
            "and the blend's (ranking=global); the segment guard compares the two.",
            ["segment", "ranking"], registry=r,
        ),
        prequential_items_recommended=Gauge(
            "streamrec_prequential_recommended_items",
            "Distinct items served in prequential trials so far, over every worker (a HyperLogLog estimate in "
            "Redis; coverage = this / streamrec_items_seen). Updated every 5 s.", registry=r,
        ),
        items_seen=Gauge(
            "streamrec_items_seen", "Distinct items in applied events so far, over every worker (a HyperLogLog "
            "estimate in Redis). Updated every 5 s.", registry=r,
        ),
        segment_serving=Gauge(
            "streamrec_segment_serving",
            "1 while a segment is served its own re-ranker, 0 while its guard falls back to the blend's ranking.",
            ["segment"], registry=r,
        ),
        segment_guard_switches_total=Counter(
            "streamrec_segment_guard_switches_total",
            "Segment guard switches, by segment and the ranking switched to (segment or global).",
            ["segment", "to"], registry=r,
        ),
        segment_hit_difference=Gauge(
            "streamrec_segment_hit_difference",
            "The segment guard's window mean of hit(segment re-ranker) - hit(blend), after the last batch.",
            ["segment"], registry=r,
        ),
        rerank_examples_total=Counter(
            "streamrec_rerank_examples_total", "Pairwise examples the segment re-rankers learned, by segment.",
            ["segment"], registry=r,
        ),
        drift_alerts_total=Counter(
            "streamrec_drift_alerts_total", "Drift detections, by segment, KPI signal and detector.",
            ["segment", "signal", "detector"], registry=r,
        ),
        drift_active=Gauge(
            "streamrec_drift_active",
            "1 for STREAMREC_DRIFT_ACTIVE_SECONDS after a detection on that segment and signal, else 0.",
            ["segment", "signal"], registry=r,
        ),
        recommendations_pushed_total=Counter(
            "streamrec_recommendations_pushed_total", "Lists sent to the recommendations topic, by segment.", ["segment"], registry=r
        ),
        serving_seconds=Histogram(
            "streamrec_serving_seconds", "HTTP answer time, by endpoint.", ["endpoint"], buckets=SERVING_BUCKETS, registry=r
        ),
        profiles_total=Counter("streamrec_profiles_total", "User profiles applied from the users topic.", registry=r),
        segment_moves_total=Counter(
            "streamrec_segment_moves_total", "Users whose segment changed: with a new profile (source=profile) or "
            "their behaviour (source=behaviour).", ["source"], registry=r
        ),
        behaviour_segment_label=Gauge(
            "streamrec_behaviour_segment_label", "1 for each behaviour segment's current readable label (from its "
            "k-means centre: activity/dwell/skip).", ["segment", "label"], registry=r
        ),
        items_total=Counter("streamrec_items_total", "Item records applied from the items topic.", registry=r),
        worker_up=Gauge("streamrec_worker_up", "1 while the worker's agents run.", registry=r),
        model_loss=Histogram(
            "streamrec_model_loss", "Per micro-batch: mean weighted logistic loss of the MF model on the batch's "
            "events before learning from them (sampled negatives left out).", buckets=LOSS_BUCKETS, registry=r,
        ),
        model_events_learned_total=Counter(
            "streamrec_model_events_learned_total", "Events the MF model's user side learned from (non-zero signal).",
            registry=r,
        ),
        item_updates_applied_total=Counter(
            "streamrec_item_updates_applied_total", "Item updates (a batch's MF gradients, co-occurrence pairs and "
            "popularity for one owner) applied by this worker as the items' owner; repeats dropped are not counted.",
            registry=r,
        ),
        model_items=Gauge("streamrec_model_items", "Items in this worker's copy of the MF item matrix.", registry=r),
        items_initialised_total=Counter(
            "streamrec_items_initialised_total", "New items started from their categories' mean row (cold start).",
            registry=r,
        ),
        explored_total=Counter(
            "streamrec_explored_total", "Lists whose last slot went to a fresh item (bounded exploration), by segment.",
            ["segment"], registry=r,
        ),
        embedding_age_seconds=Histogram(
            "streamrec_embedding_age_seconds", "Age of a vector: user rows when ranked (now minus their last "
            "update), item rows when they reach a worker from item-factors (now minus the owner's write).",
            ["kind"], buckets=AGE_BUCKETS, registry=r,
        ),
        consumer_lag_messages=Gauge(
            "streamrec_consumer_lag_messages",
            "Per assigned partition: log end offset minus the next offset to commit (Kafka's consumer lag; "
            "up to one commit interval, 2.8 s, of processed events shows as lag). Updated every 5 s.",
            ["topic", "partition"], registry=r,
        ),
        erasures_total=Counter(
            "streamrec_erasures_total", "Erasure requests applied by this worker, by status: erased (the user's keys "
            "deleted, a marker set) or already_erased (a repeat: an erasure at least as late was applied before).",
            ["status"], registry=r,
        ),
        erased_events_dropped_total=Counter(
            "streamrec_erased_events_dropped_total", "Events and profiles of erased users with a ts at or before "
            "their erasure, dropped while the user's erasure marker lives, by type.", ["type"], registry=r,
        ),
        lists_shown_total=Counter(
            "streamrec_lists_shown_total", "Served lists shown (an impression, or any event, naming their rec_id), "
            "each once.", LIST_LABELS, registry=r,
        ),
        lists_clicked_total=Counter(
            "streamrec_lists_clicked_total", "Served lists clicked at least once (list CTR: clicked / shown).",
            LIST_LABELS, registry=r,
        ),
        lists_converted_total=Counter(
            "streamrec_lists_converted_total", "Served lists with at least one purchase (conversion rate: "
            "converted / shown).", LIST_LABELS, registry=r,
        ),
        list_clicks_total=Counter(
            "streamrec_list_clicks_total", "Clicks on served lists by position, as the list's 1-based rank "
            "(CTR@position: clicks at a position / lists shown; past rank 20, or without a position, \"other\").", LIST_LABELS + ["position"],
            registry=r,
        ),
        list_purchases_total=Counter(
            "streamrec_list_purchases_total", "Purchases attributed to a served list.", LIST_LABELS, registry=r,
        ),
        list_revenue_total=Counter(
            "streamrec_list_revenue_total", "Purchase value attributed to served lists, per currency (revenue per "
            "list: this / lists shown).", LIST_LABELS + ["currency"], registry=r,
        ),
        list_dwell_seconds_total=Counter(
            "streamrec_list_dwell_seconds_total", "Dwell seconds on items of served lists (mean dwell: this / "
            "streamrec_list_dwell_events_total).", LIST_LABELS, registry=r,
        ),
        list_dwell_events_total=Counter(
            "streamrec_list_dwell_events_total", "Dwell events on items of served lists.", LIST_LABELS, registry=r,
        ),
        list_skips_total=Counter(
            "streamrec_list_skips_total", "Skips of items of served lists (skip rate: this / lists shown).",
            LIST_LABELS, registry=r,
        ),
        attribution_unmatched_total=Counter(
            "streamrec_attribution_unmatched_total", "Events naming a rec_id not attributed, by reason: "
            "unknown_list (never served, or past the join window), other_user (the list was served to someone "
            "else), bad_position (past the list's end), list_full (the list's event cap).", ["reason"], registry=r,
        ),
        experiment_assignments_total=Counter(
            "streamrec_experiment_assignments_total", "Users assigned to an experiment's variant by this worker.",
            ["experiment", "variant"], registry=r,
        ),
        list_diversity=Histogram(
            "streamrec_list_diversity", "Intra-list diversity of each list sent (pushes and answers to requests): "
            "mean pairwise 1 - cosine of its items' MF rows (stream/models/diversity.py), by segment, experiment "
            "and variant; lists of fewer than two items are left out.", LIST_LABELS, buckets=DIVERSITY_BUCKETS, registry=r,
        ),
        pushed_coverage_ratio=Gauge(
            "streamrec_pushed_coverage_ratio", "Distinct items in the lists this worker sent within the last "
            "STREAMREC_COVERAGE_WINDOW_SECONDS / items in its copy of the catalogue. Updated as lists are sent.",
            registry=r,
        ),
    )


class ThreadCpu:
    """A collector of the process's CPU seconds, ``streamrec_worker_cpu_seconds_total``, split into the
    event loop's thread (``thread="event_loop"``: the agents, the batch step, Faust's own work) and the
    rest (``thread="other"``: Kafka clients' threads, the thread Faust's consumer runs in). Against
    wall time it says how busy the loop is: a loop busy half the time waits the other half.

    ``thread_id``: the loop thread's ``threading.get_ident()`` (its CPU clock is read from whichever
    thread serves /metrics).

    >>> import threading
    >>> fam, = ThreadCpu(threading.get_ident()).collect()
    >>> fam.name, [s.labels["thread"] for s in fam.samples], all(s.value >= 0 for s in fam.samples)
    ('streamrec_worker_cpu_seconds', ['event_loop', 'other'], True)
    """

    def __init__(self, thread_id: int) -> None:
        self.clock = time.pthread_getcpuclockid(thread_id)

    def collect(self) -> Iterator[CounterMetricFamily]:
        loop = time.clock_gettime(self.clock)
        family = CounterMetricFamily(
            "streamrec_worker_cpu_seconds", "CPU seconds of this worker process: its event loop's thread, and "
            "every other thread.", labels=["thread"])
        family.add_metric(["event_loop"], loop)
        family.add_metric(["other"], max(0.0, time.process_time() - loop))
        yield family


#: The worker's metrics.
METRICS = build()
REGISTRY = METRICS.registry
