"""The pipeline benchmark's account of (c)'s tail, from histogram buckets scraped before and after."""

from __future__ import annotations

import pytest

from stream.benchmark.pipeline import _delta, _fresh_tail


def test_the_tail_counts_only_what_the_phase_added():
    inf = float("inf")
    ages_before = [(0.1, 50.0), (0.25, 90.0), (0.5, 100.0), (inf, 100.0)]
    ages_after = [(0.1, 950.0), (0.25, 1070.0), (0.5, 1095.0), (inf, 1100.0)]  # 1,000 new: 20 over 250 ms
    batches_before = [(0.05, 10.0), (0.1, 12.0), (0.25, 14.0), (inf, 15.0)]
    batches_after = [(0.05, 70.0), (0.1, 86.0), (0.25, 95.0), (inf, 101.0)]  # 86 new: 12 over 100 ms, 5 over 250
    results, lines = {}, []
    _fresh_tail(results, _delta(ages_after, ages_before), _delta(batches_after, batches_before), lines.append)
    assert results["fresh_events_over_250ms_share"] == pytest.approx(20 / 1000)
    assert (results["fresh_batches"], results["fresh_batches_over_100ms"], results["fresh_batches_over_250ms"]) \
        == (86, 12, 5)
    assert lines == ["  (c) 2.0% of the events were older than 250 ms when applied; of 86 batches, 12 took more "
                     "than 100 ms and 5 more than 250 ms"]


def test_a_phase_with_nothing_measured_says_so_without_dividing_by_zero():
    results = {}
    _fresh_tail(results, [], [], lambda line: None)
    assert results["fresh_batches"] == 0 and results["fresh_batches_over_100ms"] == 0
    assert results["fresh_events_over_250ms_share"] != results["fresh_events_over_250ms_share"]  # NaN
