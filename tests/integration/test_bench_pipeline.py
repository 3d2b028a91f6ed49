"""`streamrec bench pipeline` end to end on the real stack, small: every phase runs and
reports what it measured (the figures themselves live in docs/PERFORMANCE.md, not here)."""

from __future__ import annotations

import math

import pytest
import redis

from stream.benchmark.pipeline import run_pipeline_bench

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workers", [1, 2])
def test_every_phase_of_the_pipeline_bench_reports(stack_settings, workers):
    lines = []
    results = run_pipeline_bench(stack_settings, n_events=600, fresh_rate=200.0, fresh_seconds=2.0, workers=workers,
                                 log=lines.append)

    assert results["events"] == 600 and results["workers"] == workers
    for name in ("noop_events_per_s", "pipeline_events_per_s", "ratio_b_over_a", "noop_fresh_rate_achieved",
                 "fresh_rate_achieved", "fresh_batch_events_mean", "fresh_batch_seconds_mean", "drain_batch_events_mean",
                 "drain_batch_seconds_mean"):
        assert results[name] > 0, (name, results)
    # the no-op agent saw every (a') event, each in some age bucket: finite quantiles, in order
    assert 0 < results["noop_freshness_p50_s"] <= results["noop_freshness_p99_s"] < math.inf, results
    assert 0 < results["freshness_p50_s"] <= results["freshness_p99_s"] < math.inf, results
    # the tail's make-up, from the same phase: shares and counts within what was measured
    assert 0 <= results["fresh_events_over_250ms_share"] <= 1, results
    assert 0 <= results["fresh_batches_over_250ms"] <= results["fresh_batches_over_100ms"] <= results["fresh_batches"]
    assert results["fresh_batches"] >= 1, results
    assert any("older than 250 ms when applied" in line for line in lines), lines
    assert results["ratio_b_over_a"] == pytest.approx(results["pipeline_events_per_s"] / results["noop_events_per_s"])
    # the steady rates: each phase's last three quarters, when the counter passed a quarter before the end
    steady = {k: results.get(f"{k}_last_three_quarters") for k in ("noop_events_per_s", "pipeline_events_per_s")}
    if None not in steady.values():
        assert all(v > 0 for v in steady.values()), results
        assert results["ratio_b_over_a_last_three_quarters"] == pytest.approx(
            steady["pipeline_events_per_s"] / steady["noop_events_per_s"])
    assert any(line.startswith("  (a') no-op agent at") for line in lines), lines
    # where the processes' time went: the no-op loops' busy share (an agent of one batch has no
    # interval to report, which two agents sharing 600 events can be), and the workers' split
    # over (b), whose parts (in batches, between them busy and waiting) add up to the drain's wall time
    if workers == 1 or "noop_loop_busy_share" in results:
        assert 0 < results["noop_loop_busy_share"] <= 1.05 and results["noop_other_threads_share"] >= 0, results
        assert results["loop_cpu_ratio_a_over_b"] == pytest.approx(
            results["noop_loop_cpu_us_per_event"] / results["drain_loop_cpu_us_per_event"])
    assert results["drain_loop_cpu_us_per_event"] > 0, results
    parts = [results[f"drain_{k}_share"] for k in ("in_batches", "between_batches_busy", "between_batches_waiting")]
    assert all(p >= 0 for p in parts) and sum(parts) == pytest.approx(1.0, abs=0.05), results
    assert 0 < results["drain_in_batches_waiting_share"] <= results["drain_in_batches_share"], results
    assert 0 < results["drain_loop_busy_share"] <= 1.05 and 0 <= results["drain_machine_idle_share"] <= 1, results
    assert any(line.startswith("  (b) the workers' event loops were busy") for line in lines), lines
    # over (c) too: how busy, the CPU an event, and the lists pushed an event (at most one a user a
    # batch; the drain pushes every user's first list, (c)'s users may all have theirs already)
    assert 0 < results["fresh_loop_busy_share"] <= 1.05 and results["fresh_loop_cpu_us_per_event"] > 0, results
    assert 0 < results["drain_lists_per_event"] <= 1.0 and 0 <= results["fresh_lists_per_event"] <= 1.0, results
    assert any(line.startswith("  (c) the workers' event loops were busy") for line in lines), lines
    # every process of each phase took part (the group spread the partitions over all of them):
    # each handled some of the events, and together every one of them
    for name in ("noop_events_per_s", "pipeline_events_per_s"):
        shares = [results[f"{name}_worker{i}"] for i in range(workers)]
        assert all(v > 0 for v in shares), (name, shares, results)
        assert f"{name}_worker{workers}" not in results
        assert sum(shares) == pytest.approx(results[name], rel=0.35), (name, shares, results)
    # it cleans up after itself: no key of its Redis prefix is left
    tag = next(line.split()[2].rstrip(":") for line in lines if line.startswith("pipeline benchmark "))
    client = redis.Redis.from_url(stack_settings.redis_url, **stack_settings.redis_kwargs())
    assert not list(client.scan_iter(f"bench:{tag}:*", count=1000))
    # nor a topic of either phase (theirs and their Faust apps' own)
    from confluent_kafka.admin import AdminClient

    left = [t for t in AdminClient(stack_settings.kafka_client_config()).list_topics(timeout=10).topics
            if t.startswith((f"bench{tag}a.", f"bench{tag}b.", f"bench-{tag}-"))]
    assert not left, left
