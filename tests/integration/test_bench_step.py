"""`streamrec bench step` on the real Redis, small: every stage reports, the stages add up to the
total, lists are pushed, and the bench leaves no key behind (the figures live in
docs/PERFORMANCE.md, not here)."""

from __future__ import annotations

import pytest
import redis

from stream.benchmark.step import run_step_bench

pytestmark = pytest.mark.integration


def test_every_stage_of_the_step_bench_reports(stack_settings):
    result = run_step_bench(stack_settings, warmup=1000, events=1000, runs=2)

    for stage in ("validate", "load", "score_trials", "learn", "commit", "owner", "rank", "push"):
        assert result.us_per_event[stage] > 0, (stage, result.us_per_event)
    for run in result.per_run:  # each stage's own time: together they are the whole step
        assert sum(run["stages"].values()) == pytest.approx(run["total"], rel=1e-6)
    assert result.json_loads_us_per_event > 0 and result.ratio > 1
    assert result.lists_pushed > 0
    asked, read, kept = result.popularity_read  # the worker's default: segment popularity kept a second
    assert kept == 1.0 and 0 < read < asked and "from Redis, the rest kept" in result.table()
    assert "| **total** |" in result.table() and "20,000 users, 10,000 items" in result.table()
    client = redis.Redis.from_url(stack_settings.redis_url, **stack_settings.redis_kwargs())
    assert result.redis_prefix and not list(client.scan_iter(f"{result.redis_prefix}:*", count=1000))
