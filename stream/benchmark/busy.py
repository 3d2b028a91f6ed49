"""Where a drain's time went in the processes that drained it: how busy their event loops were, in
batches and between them, against the wall time; and how idle the machine was meanwhile.

A worker exports the CPU seconds of its event loop's thread and of its other threads
(``streamrec_worker_cpu_seconds_total``, :class:`stream.metrics.ThreadCpu`) and, per batch, the
wall and loop-thread CPU seconds (``streamrec_batch_seconds_sum``,
``streamrec_batch_cpu_seconds_total``). Between two scrapes ``seconds`` apart, over ``workers``
processes, the loop's wall time splits into:

* **in batches**: the batch's own work (with what other tasks did in its waits), and its waits
  for Redis and Kafka when the loop had nothing else to do;
* **between batches**: Faust's work (fetching, handing events to the agent's buffer, acks, the
  other tasks), and the loop waiting for events.

The no-op agent (stream/benchmark/noop.py) notes its loop thread's CPU and its count of events at
its first and its latest batch instead: how busy its loop was, and its CPU an event. Against the
workers' CPU an event, that gives what (b)/(a) would be if neither loop ever waited.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TIME_SERIES", "time_shares", "machine_cpu", "machine_idle_share", "loop_shares"]

BATCH_WALL = "streamrec_batch_seconds_sum"
BATCH_CPU = "streamrec_batch_cpu_seconds_total"
LOOP_CPU = 'streamrec_worker_cpu_seconds_total{thread="event_loop"}'
OTHER_CPU = 'streamrec_worker_cpu_seconds_total{thread="other"}'
#: The series :func:`time_shares` reads off the workers' /metrics.
TIME_SERIES = (BATCH_WALL, BATCH_CPU, LOOP_CPU, OTHER_CPU)


def time_shares(before: dict[str, float], after: dict[str, float], seconds: float, workers: int) -> dict[str, float]:
    """Shares of the workers' wall time (``seconds`` × ``workers``) between two scrapes of
    :data:`TIME_SERIES` (summed over the workers): ``loop_busy``, ``in_batches`` (of which
    ``in_batches_waiting``), ``between_batches_busy``, ``between_batches_waiting``, and
    ``other_threads`` (their CPU, in cores per worker). The loops' CPU seconds themselves are
    ``loop_cpu_seconds``.

    >>> s = time_shares(dict.fromkeys(TIME_SERIES, 0.0), {"streamrec_batch_seconds_sum": 6.0,
    ...     "streamrec_batch_cpu_seconds_total": 5.0, LOOP_CPU: 7.0, OTHER_CPU: 0.5}, 10.0, 1)
    >>> {k: round(v, 2) for k, v in s.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'loop_busy': 0.7, 'in_batches': 0.6, 'in_batches_waiting': 0.1, 'between_batches_busy': 0.2,
     'between_batches_waiting': 0.2, 'other_threads': 0.05, 'loop_cpu_seconds': 7.0}
    """
    if seconds <= 0 or workers < 1:
        raise ValueError(f"time_shares: need seconds > 0 and workers >= 1 (got {seconds}, {workers})")
    wall = seconds * workers
    d = {k: after[k] - before[k] for k in TIME_SERIES}
    in_batches, batch_cpu, loop = d[BATCH_WALL], d[BATCH_CPU], d[LOOP_CPU]
    between_busy = max(0.0, loop - batch_cpu)
    return {
        "loop_busy": loop / wall,
        "in_batches": in_batches / wall,
        "in_batches_waiting": max(0.0, in_batches - batch_cpu) / wall,
        "between_batches_busy": between_busy / wall,
        "between_batches_waiting": max(0.0, wall - in_batches - between_busy) / wall,
        "other_threads": d[OTHER_CPU] / wall,
        "loop_cpu_seconds": loop,
    }


def loop_shares(first: str, last: str) -> dict[str, float] | None:
    """How busy a no-op agent's loop thread was between two of its notes (each ``"<monotonic
    seconds> <loop thread CPU> <process CPU> <events handled>"``), and its other threads' CPU, as
    shares of that wall time, and its loop's CPU µs an event handled in between; None when the
    notes are less than a millisecond apart.

    >>> loop_shares("100.0 2.0 2.5 500", "110.0 8.0 9.0 60500")
    {'loop_busy': 0.6, 'other_threads': 0.05, 'loop_cpu_us_per_event': 100.0}
    """
    t0, loop0, proc0, n0 = map(float, first.split())
    t1, loop1, proc1, n1 = map(float, last.split())
    wall = t1 - t0
    if wall < 1e-3 or n1 <= n0:
        return None
    loop = loop1 - loop0
    return {"loop_busy": loop / wall, "other_threads": max(0.0, (proc1 - proc0) - loop) / wall,
            "loop_cpu_us_per_event": loop * 1e6 / (n1 - n0)}


def machine_cpu(stat: Path = Path("/proc/stat")) -> tuple[float, float] | None:
    """(idle, total) CPU time of the whole machine so far (Linux' /proc/stat, in its ticks), or None
    where it cannot be read."""
    try:
        fields = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [float(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0), sum(ticks[:8])


def machine_idle_share(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    """The share of the machine's CPU time that was idle between two :func:`machine_cpu` readings.

    >>> machine_idle_share((100.0, 400.0), (160.0, 600.0))
    0.3
    """
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])
