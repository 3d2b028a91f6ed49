"""Builds the Grafana dashboards in dashboards/grafana/dashboards/ from one description, so every
panel uses the provisioned datasource and the metric names of stream/metrics.py.

    python dashboards/build_dashboards.py      # rewrites the JSON files; commit them
    python dashboards/build_dashboards.py deploy/experiments.toml   # and one per experiment in that file
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "streamrec-prometheus"}

RATE = "rate({m}[5m])"
CTR = ('sum by (segment) (rate(streamrec_events_total{type="click"}[5m])) / '
       'sum by (segment) (rate(streamrec_events_total{type="impression"}[5m]))')
SKIP = ('sum by (segment) (rate(streamrec_events_total{type="skip"}[5m])) / '
        '(sum by (segment) (rate(streamrec_events_total{type="skip"}[5m])) + '
        'sum by (segment) (rate(streamrec_events_total{type="dwell"}[5m])))')
HIT = ("sum by (segment) (rate(streamrec_prequential_hits_total[5m])) / "
       "sum by (segment) (rate(streamrec_prequential_trials_total[5m]))")
LOSS = "sum(rate(streamrec_model_loss_sum[5m])) / sum(rate(streamrec_model_loss_count[5m]))"
RANKING_HIT = ("sum by (segment, ranking) (rate(streamrec_prequential_ranking_hits_total[5m])) / ignoring (ranking) "
               "group_left sum by (segment) (rate(streamrec_prequential_trials_total[5m]))")
NDCG = ("sum by (segment) (rate(streamrec_prequential_ndcg_gain_total[5m])) / "
        "sum by (segment) (rate(streamrec_prequential_trials_total[5m]))")


def q(quantile: float, metric: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({quantile}, sum by ({group}) (rate({metric}_bucket[5m])))"


# dashboard uid -> (title, [(panel title, unit, [(expr, legend)])])
DASHBOARDS = {
    "streamrec-overview": ("streamrec / overview", [
        ("Events applied per second, by type", "ops", [("sum by (type) (rate(streamrec_events_total[1m]))", "{{type}}")]),
        ("Events applied per second, by segment", "ops",
         [("sum by (segment) (rate(streamrec_events_total[1m]))", "{{segment}}")]),
        ("Online hit rate@10 by segment (prequential)", "percentunit", [(HIT, "{{segment}}")]),
        ("Click-through rate by segment", "percentunit", [(CTR, "{{segment}}")]),
        ("Dead-lettered messages per second, by reason", "ops",
         [("sum by (reason) (rate(streamrec_invalid_events_total[5m]))", "{{reason}}")]),
        ("Event-to-Redis time (p50, p99)", "s", [(q(0.5, "streamrec_event_to_applied_seconds"), "p50"),
                                                 (q(0.99, "streamrec_event_to_applied_seconds"), "p99")]),
        ("Recommendation lists pushed per second, by segment", "ops",
         [("sum by (segment) (rate(streamrec_recommendations_pushed_total[1m]))", "{{segment}}")]),
        ("Drift detector active, by segment and signal", "short",
         [("max by (segment, signal) (streamrec_drift_active)", "{{segment}} {{signal}}")]),
    ]),
    "streamrec-segments": ("streamrec / segment KPIs", [
        ("Click-through rate", "percentunit", [(CTR, "{{segment}}")]),
        ("Skip rate (skips / (skips + dwells))", "percentunit", [(SKIP, "{{segment}}")]),
        ("Dwell time p50", "s", [(q(0.5, "streamrec_dwell_seconds", "segment"), "{{segment}}")]),
        ("Dwell time p90", "s", [(q(0.9, "streamrec_dwell_seconds", "segment"), "{{segment}}")]),
        ("Impressions per second", "ops",
         [('sum by (segment) (rate(streamrec_events_total{type="impression"}[5m]))', "{{segment}}")]),
        ("Clicks per second", "ops",
         [('sum by (segment) (rate(streamrec_events_total{type="click"}[5m]))', "{{segment}}")]),
    ]),
    "streamrec-model-quality": ("streamrec / model quality", [
        ("Online hit rate@10 (prequential)", "percentunit", [(HIT, "{{segment}}")]),
        ("Online NDCG@10 (prequential)", "short", [(NDCG, "{{segment}}")]),
        ("Prequential trials per second", "ops",
         [("sum by (segment) (rate(streamrec_prequential_trials_total[5m]))", "{{segment}}")]),
        ("Lists pushed per second", "ops",
         [("sum by (segment) (rate(streamrec_recommendations_pushed_total[5m]))", "{{segment}}")]),
        ("MF model loss (batch mean before learning)", "short", [(LOSS, "logistic loss")]),
        ("Events learned per second (MF user side)", "ops",
         [("sum(rate(streamrec_model_events_learned_total[5m]))", "learned")]),
        ("Embedding age p50 / p99, by kind", "s",
         [(q(0.5, "streamrec_embedding_age_seconds", "kind"), "p50 {{kind}}"),
          (q(0.99, "streamrec_embedding_age_seconds", "kind"), "p99 {{kind}}")]),
        ("Items in the model (per worker)", "short", [("max by (instance) (streamrec_model_items)", "{{instance}}")]),
        ("Catalogue coverage of the lists served in trials", "percentunit",
         [("max(streamrec_prequential_recommended_items) / max(streamrec_items_seen)", "coverage")]),
        ("Hit rate@10 on the same trials: segment re-ranker vs the blend", "percentunit",
         [(RANKING_HIT, "{{segment}} {{ranking}}")]),
        ("Segment serves its re-ranker (1) or, after its guard fell back, the blend's ranking (0)", "short",
         [("min by (segment) (streamrec_segment_serving)", "{{segment}}")]),
        ("Segment guard switches in the last hour", "short",
         [("sum by (segment, to) (increase(streamrec_segment_guard_switches_total[1h]))", "{{segment}} to {{to}}")]),
        ("Re-ranker examples learned per second", "ops",
         [("sum by (segment) (rate(streamrec_rerank_examples_total[5m]))", "{{segment}}")]),
        ("Intra-list diversity of lists sent (mean, by segment)", "short",
         [("sum by (segment) (rate(streamrec_list_diversity_sum[5m])) / "
           "sum by (segment) (rate(streamrec_list_diversity_count[5m]))", "{{segment}}")]),
        ("Catalogue coverage of lists sent (window, per worker)", "percentunit",
         [("max by (instance) (streamrec_pushed_coverage_ratio)", "{{instance}}")]),
    ]),
    "streamrec-drift": ("streamrec / drift", [
        ("Detector active (1 = drift seen recently)", "short",
         [("max by (segment, signal) (streamrec_drift_active)", "{{segment}} {{signal}}")]),
        ("Detections in the last hour", "short",
         [("max by (segment, signal) (max_over_time(streamrec_drift_active[1h]))", "{{segment}} {{signal}}")]),
        ("Click-through rate (for context)", "percentunit", [(CTR, "{{segment}}")]),
        ("Online hit rate@10 (for context)", "percentunit", [(HIT, "{{segment}}")]),
    ]),
    "streamrec-pipeline": ("streamrec / pipeline health", [
        ("Workers up", "short", [('sum(up{job="streamrec-worker"})', "workers scraped and up")]),
        ("Consumer lag by topic (messages)", "short",
         [("sum by (topic) (streamrec_consumer_lag_messages)", "{{topic}}")]),
        ("Micro-batch time (p50, p99)", "s", [(q(0.5, "streamrec_batch_seconds"), "p50"),
                                             (q(0.99, "streamrec_batch_seconds"), "p99")]),
        ("Event-to-Redis time (p50, p99)", "s", [(q(0.5, "streamrec_event_to_applied_seconds"), "p50"),
                                                 (q(0.99, "streamrec_event_to_applied_seconds"), "p99")]),
        ("HTTP answer time p99, by endpoint", "s",
         [(q(0.99, "streamrec_serving_seconds", "endpoint"), "{{endpoint}}")]),
        ("Dead letters per second, by reason", "ops",
         [("sum by (reason) (rate(streamrec_invalid_events_total[5m]))", "{{reason}}")]),
        ("Duplicate events dropped per second", "ops", [("sum(rate(streamrec_duplicate_events_total[5m]))", "duplicates")]),
        ("Item gradient rows applied per second (item owners)", "ops",
         [("sum by (instance) (rate(streamrec_item_updates_applied_total[5m]))", "{{instance}}")]),
    ]),
}


def build(uid: str, title: str, panels) -> dict:
    out = []
    for n, (panel_title, unit, targets) in enumerate(panels):
        out.append({
            "id": n + 1, "type": "timeseries", "title": panel_title, "datasource": DATASOURCE,
            "gridPos": {"x": 12 * (n % 2), "y": 8 * (n // 2), "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + k), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                        for k, (expr, legend) in enumerate(targets)],
        })
    return {"uid": uid, "title": title, "tags": ["streamrec"], "schemaVersion": 39, "version": 1,
            "time": {"from": "now-30m", "to": "now"}, "refresh": "10s", "panels": out}


def experiment_panels(name: str) -> list:
    """The panels of one experiment's dashboard: its KPIs per variant (attribution's counters,
    stream/experiments/attribution.py), from the lists served under it."""
    sel = f'experiment="{name}"'

    def per_list(counter: str) -> str:
        return (f"sum by (variant) (increase({counter}{{{sel}}}[1h])) / "
                f"sum by (variant) (increase(streamrec_lists_shown_total{{{sel}}}[1h]))")

    return [
        ("Users assigned, by variant (sample ratio)", "short",
         [(f"sum by (variant) (streamrec_experiment_assignments_total{{{sel}}})", "{{variant}}")]),
        ("Lists shown per second, by variant", "ops",
         [(f"sum by (variant) (rate(streamrec_lists_shown_total{{{sel}}}[5m]))", "{{variant}}")]),
        ("List CTR (clicked lists / shown lists, last hour)", "percentunit",
         [(per_list("streamrec_lists_clicked_total"), "{{variant}}")]),
        ("CTR@position (clicks at a rank / lists shown, last hour)", "percentunit",
         [(f"sum by (variant, position) (increase(streamrec_list_clicks_total{{{sel}}}[1h])) / ignoring (position) "
           f"group_left sum by (variant) (increase(streamrec_lists_shown_total{{{sel}}}[1h]))",
           "{{variant}} @{{position}}")]),
        ("Conversion rate (lists with a purchase / shown lists, last hour)", "percentunit",
         [(per_list("streamrec_lists_converted_total"), "{{variant}}")]),
        ("Revenue per list shown, by currency (last hour)", "short",
         [(f"sum by (variant, currency) (increase(streamrec_list_revenue_total{{{sel}}}[1h])) / ignoring (currency) "
           f"group_left sum by (variant) (increase(streamrec_lists_shown_total{{{sel}}}[1h]))",
           "{{variant}} {{currency}}")]),
        ("Mean dwell on listed items (s, last hour)", "s",
         [(f"sum by (variant) (increase(streamrec_list_dwell_seconds_total{{{sel}}}[1h])) / "
           f"sum by (variant) (increase(streamrec_list_dwell_events_total{{{sel}}}[1h]))", "{{variant}}")]),
        ("Skips per list shown (last hour)", "short",
         [(per_list("streamrec_list_skips_total"), "{{variant}}")]),
        ("List CTR by segment and variant (last hour)", "percentunit",
         [(f"sum by (segment, variant) (increase(streamrec_lists_clicked_total{{{sel}}}[1h])) / "
           f"sum by (segment, variant) (increase(streamrec_lists_shown_total{{{sel}}}[1h]))", "{{segment}} {{variant}}")]),
    ]


def experiment_dashboard(name: str) -> dict:
    """One experiment's Grafana dashboard (uid ``streamrec-experiment-<name>``). The decision is
    the report's (`streamrec experiment report`): these are live KPIs, not a test."""
    return build(f"streamrec-experiment-{name}", f"streamrec / experiment {name}", experiment_panels(name))


def main(experiments_file: str | None = None) -> None:
    """Write every dashboard; with an experiments file, one dashboard per experiment in it too."""
    OUT.mkdir(parents=True, exist_ok=True)
    boards = [(uid.removeprefix("streamrec-"), build(uid, title, panels)) for uid, (title, panels) in DASHBOARDS.items()]
    if experiments_file:
        from stream.experiments.definition import load

        boards += [(f"experiment-{e.name}", experiment_dashboard(e.name)) for e in load(experiments_file)]
    for name, board in boards:
        (OUT / f"{name}.json").write_text(json.dumps(board, indent=2) + "\n")
        print(f"wrote {OUT / name}.json")


if __name__ == "__main__":
    import sys

    main(sys.argv[1] if len(sys.argv) > 1 else None)
