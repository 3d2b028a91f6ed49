"""`python -m stream.benchmark.validate` at a toy size: every way reports, on the step bench's
records, and the table says what it measured (the figures live in docs/PERFORMANCE.md)."""

from __future__ import annotations

import pytest

from stream.benchmark.validate import main, run_validate_bench
from stream.config import Settings


def test_the_validate_bench_times_three_ways_over_the_step_bench_records(capsys):
    result = run_validate_bench(Settings(batch_size=50), events=300, rounds=2)
    assert (result.events, result.batch_size, result.rounds) == (300, 50, 2)
    assert min(result.fast_us, result.per_record_us, result.json_loads_us) > 0
    table = result.table()
    assert "| validate_records (fast path) |" in table and "| reference: json.loads" in table
    assert main(["--events", "100", "--rounds", "1"]) == 0
    assert "per record / fast path:" in capsys.readouterr().out


def test_the_validate_bench_refuses_nothing_to_time():
    with pytest.raises(ValueError, match="events >= 1"):
        run_validate_bench(Settings(), events=0)
