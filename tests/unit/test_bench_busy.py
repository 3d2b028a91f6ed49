"""Where a drain's time went (stream/benchmark/busy.py), and reading labelled series off /metrics."""

from __future__ import annotations

import threading
import time

import pytest

from stream.benchmark import busy, scrape
from stream.benchmark.busy import LOOP_CPU, OTHER_CPU, TIME_SERIES, loop_shares, machine_cpu, machine_idle_share, time_shares
from stream.metrics import ThreadCpu


def _series(batch_wall, batch_cpu, loop, other):
    return dict(zip(TIME_SERIES, (batch_wall, batch_cpu, loop, other)))


def test_the_wall_time_splits_into_batches_and_between_them():
    before = _series(10.0, 8.0, 20.0, 1.0)
    after = _series(22.0, 17.0, 36.0, 2.0)  # over 20 s of two workers: 40 worker-seconds
    s = time_shares(before, after, 20.0, 2)
    assert s["in_batches"] == pytest.approx(12 / 40) and s["in_batches_waiting"] == pytest.approx(3 / 40)
    assert s["between_batches_busy"] == pytest.approx(7 / 40)  # loop CPU outside the batches
    assert s["between_batches_waiting"] == pytest.approx(21 / 40)
    assert s["in_batches"] + s["between_batches_busy"] + s["between_batches_waiting"] == pytest.approx(1.0)
    assert s["loop_busy"] == pytest.approx(16 / 40) and s["other_threads"] == pytest.approx(1 / 40)


def test_clock_skew_between_the_counters_never_gives_a_negative_share():
    # a batch's CPU counted after the loop's was read: more batch CPU than loop CPU
    s = time_shares(_series(0, 0, 0, 0), _series(5.0, 6.0, 5.5, 0.0), 10.0, 1)
    assert s["in_batches_waiting"] == 0.0 and s["between_batches_busy"] == 0.0
    assert s["between_batches_waiting"] == pytest.approx(0.5)


@pytest.mark.parametrize("seconds, workers", [(0.0, 1), (-1.0, 1), (5.0, 0)])
def test_time_shares_refuses_an_empty_interval(seconds, workers):
    with pytest.raises(ValueError, match="time_shares"):
        time_shares(_series(0, 0, 0, 0), _series(1, 1, 1, 1), seconds, workers)


def test_loop_shares_of_a_no_op_agent():
    assert loop_shares("5.0 1.0 1.0 100", "9.0 3.0 3.4 20100") == pytest.approx(
        {"loop_busy": 0.5, "other_threads": 0.1, "loop_cpu_us_per_event": 100.0})
    assert loop_shares("5.0 1.0 1.0 100", "5.0 1.0 1.0 100") is None  # one batch only: no interval


def test_machine_idle_share_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n")
    before = machine_cpu(stat)
    assert before == (850.0, 1000.0)
    stat.write_text("cpu  200 0 100 1100 100 0 0 0 0 0\n")
    assert machine_idle_share(before, machine_cpu(stat)) == pytest.approx(350 / 500)
    assert machine_cpu(tmp_path / "absent") is None and machine_idle_share(None, before) is None
    stat.write_text("intr 1 2 3\n")
    assert machine_cpu(stat) is None


def test_thread_cpu_reads_the_loop_threads_clock_from_another_thread():
    spun = threading.Event()
    done = threading.Event()
    box = {}

    def loop_thread():
        box["collector"] = ThreadCpu(threading.get_ident())
        end = time.thread_time() + 0.05
        while time.thread_time() < end:  # 50 ms of CPU in this thread only
            pass
        spun.set()
        done.wait(5)

    t = threading.Thread(target=loop_thread)
    t.start()
    try:
        assert spun.wait(5)
        values = {s.labels["thread"]: s.value for s in next(iter(box["collector"].collect())).samples}
        assert values["event_loop"] >= 0.05
        assert values["other"] >= 0.0
    finally:
        done.set()
        t.join()


def test_scrape_sums_reads_one_labelled_series_or_every_label_set(monkeypatch):
    page = "\n".join([
        "# HELP streamrec_worker_cpu_seconds_total CPU",
        'streamrec_worker_cpu_seconds_total{thread="event_loop"} 7.5',
        'streamrec_worker_cpu_seconds_total{thread="other"} 0.5',
        "streamrec_batch_seconds_sum 3.25",
    ])
    monkeypatch.setattr(scrape, "_metrics", lambda port, headers: page)
    got = scrape.scrape_sums(1, (LOOP_CPU, OTHER_CPU, "streamrec_worker_cpu_seconds_total", busy.BATCH_WALL))
    assert got == {LOOP_CPU: 7.5, OTHER_CPU: 0.5, "streamrec_worker_cpu_seconds_total": 8.0, busy.BATCH_WALL: 3.25}


class _Notes:
    """The no-op agents' CPU notes as Redis holds them (hashes of bytes)."""

    def __init__(self, first: dict[str, str], last: dict[str, str]) -> None:
        self.hashes = {"k:cpu-first": first, "k:cpu-last": last}

    def hgetall(self, key):
        return {w.encode(): v.encode() for w, v in self.hashes.get(key, {}).items()}


def test_the_no_op_agents_busy_share_is_their_mean():
    from stream.benchmark.pipeline import _noop_busy

    results, lines = {}, []
    notes = _Notes({"w0": "0 0 0 0", "w1": "0 0 0 0", "w2": "3 1 1 500"},
                   {"w0": "10 8 8.5 40000", "w1": "10 4 4.5 40000", "w2": "3 1 1 500"})  # w2: one batch
    _noop_busy(results, notes, "k", lines.append)
    assert results["noop_loop_busy_share"] == pytest.approx(0.6)
    assert results["noop_other_threads_share"] == pytest.approx(0.05)
    assert results["noop_loop_cpu_us_per_event"] == pytest.approx(150.0)  # (200 + 100) / 2
    assert lines and "busy 60%" in lines[0] and "150 µs" in lines[0]
    results = {}
    _noop_busy(results, _Notes({"w0": "3 1 1 500"}, {"w0": "3 1 1 500"}), "k", lines.append)
    assert results == {}  # nothing to report, and no error


def test_the_drain_reports_the_loops_cpu_an_event_beside_the_no_ops():
    from stream.benchmark.pipeline import _drain_busy

    lines = []
    results = {"noop_loop_cpu_us_per_event": 40.0}
    before = _series(0.0, 0.0, 0.0, 0.0)
    after = _series(12.0, 10.0, 16.0, 1.0)  # 16 s of loop CPU for 100,000 events: 160 µs an event
    _drain_busy(results, before, after, 24.0, 1, 100_000, 0.5, lines.append)
    assert results["drain_loop_cpu_us_per_event"] == pytest.approx(160.0)
    assert results["loop_cpu_ratio_a_over_b"] == pytest.approx(0.25)
    assert results["drain_machine_idle_share"] == 0.5 and "drain_loop_cpu_seconds_share" not in results
    assert any("160 µs an event" in line and "0.25" in line for line in lines), lines
