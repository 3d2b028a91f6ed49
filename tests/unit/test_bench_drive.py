"""The pipeline bench's drain timing (stream/benchmark/drive.py), on a fake clock: no broker."""

from __future__ import annotations

import pytest

from stream.benchmark import drive


class FakeClock:
    """time.monotonic and time.sleep for drive.py: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def two_speeds(clock: FakeClock, n: int):
    """A counter that handles its first quarter at 1,000 events/s, the rest at 500 events/s."""
    quarter = n // 4

    def counter() -> int:
        t = clock.now
        fast = 1000 * t
        return min(n, int(fast if fast < quarter else quarter + 500 * (t - quarter / 1000)))
    return counter


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(drive, "time", c)
    monkeypatch.setattr(drive, "produce_all", lambda s, events: None)
    return c


def test_the_steady_rate_leaves_out_a_fast_start(clock):
    n = 400
    results: dict[str, float] = {}
    t0, t1 = drive.drain_timed(None, [None] * n, two_speeds(clock, n), lambda line: None, "test", [], results, "rate")

    assert results["rate_last_three_quarters"] == pytest.approx(500, rel=0.01)
    assert n / (t1 - t0) > 550  # the whole run's rate, which the fast start lifts


def test_time_until_records_when_each_mark_was_passed(clock):
    passed = {100: None, 300: None}
    first, last = drive.time_until(two_speeds(clock, 400), 400, lambda line: None, "test", [], passed=passed)

    assert first == pytest.approx(0.02) and last == pytest.approx(0.7, abs=0.021)
    for mark, (at, value) in passed.items():
        assert value >= mark and value - mark < 25  # seen at the first poll past the mark (every 20 ms)
        assert first <= at <= last


def test_no_steady_rate_when_the_counter_jumps_to_the_end(clock):
    results: dict[str, float] = {}
    drive.drain_timed(None, [None] * 10, lambda: 10, lambda line: None, "test", [], results, "rate")
    assert "rate_last_three_quarters" not in results
