"""Drift detection on KPI streams, per segment, with River detectors.

Each (segment, signal) pair has its own detector. The signals, one observation per event:

    ctr        impression -> 0, click -> 1      (its mean rises and falls with click-through)
    skip_rate  dwell -> 0, skip -> 1            (outcome of a played item)
    dwell      log1p(seconds) / log1p(86400)    (dwell time, scaled into [0, 1])
    hit_rate   prequential trial: hit -> 1, miss -> 0

The two ratio signals, ctr and skip_rate, are made of events from two topics (impressions
and clicks; skips and dwells), which the worker reads in batches of one topic at a time:
fed event by event, a run of impressions and then a run of clicks would look like a change.
So :class:`KpiDrift` first counts them over fixed time windows (:class:`KpiWindows`), much
longer than that interleaving, and feeds each window to the detector as its count of
observations with the ones spread evenly among the zeros. dwell (one topic) and hit_rate
(one per click) are fed event by event.

A detection returns a :class:`DriftAlert` naming the segment, signal and detector, with the
signal's level before (a slow moving average) and after (a fast one); the slow average then
restarts from the fast one, so one change gives one alert.

Examples
--------
>>> import random
>>> rng = random.Random(1)
>>> monitor = DriftMonitor()
>>> alerts = [a for n in range(6000)
...           if (a := monitor.update("students", "ctr", float(rng.random() < (0.1 if n < 3000 else 0.5)))) ]
>>> [(a.segment, a.signal, a.detector, a.events_seen) for a in alerts]
[('students', 'ctr', 'ADWIN', 3072)]
>>> round(alerts[0].value_before, 2), round(alerts[0].value_after, 2)
(0.12, 0.36)
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Callable

__all__ = ["DriftMonitor", "DriftAlert", "KpiWindows", "KpiDrift", "SIGNALS", "WINDOWED", "signal_values"]

SIGNALS = ("ctr", "skip_rate", "dwell", "hit_rate")
#: Signals whose observations come from two topics: counted over time windows first.
WINDOWED = ("ctr", "skip_rate")
_DWELL_SCALE = math.log1p(86400.0)


def signal_values(event_type: str, seconds: float | None = None) -> list[tuple[str, float]]:
    """The KPI observations one event gives (hit_rate comes from prequential trials instead).

    >>> signal_values("dwell", 60.0)  # doctest: +ELLIPSIS
    [('skip_rate', 0.0), ('dwell', 0.3616...)]
    """
    if event_type == "impression":
        return [("ctr", 0.0)]
    if event_type == "click":
        return [("ctr", 1.0)]
    if event_type == "skip":
        return [("skip_rate", 1.0)]
    if event_type == "dwell":
        return [("skip_rate", 0.0), ("dwell", math.log1p(max(0.0, seconds or 0.0)) / _DWELL_SCALE)]
    return []


@dataclass(frozen=True)
class DriftAlert:
    segment: str
    signal: str
    detector: str
    value_before: float
    value_after: float
    events_seen: int  # observations of this (segment, signal) so far
    detected_at: float = field(default_factory=time.time)
    alert_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_message(self) -> dict:
        return {"schema": "v1", **asdict(self)}


class _Stream:
    __slots__ = ("detector", "slow", "fast", "n", "n_slow")

    def __init__(self, detector):
        self.detector = detector
        self.slow = 0.0
        self.fast = 0.0
        self.n = 0
        self.n_slow = 0


class DriftMonitor:
    """One River detector per (segment, signal).

    Parameters
    ----------
    detector_factory
        Makes a fresh detector; default ``river.drift.ADWIN(delta=delta)``.
    delta
        ADWIN's confidence: smaller, fewer false alarms and later detections.
    slow_alpha, fast_alpha
        Weights of the moving averages reported as the levels before and after.
    """

    def __init__(self, detector_factory: Callable[[], object] | None = None, *, delta: float = 0.002,
                 slow_alpha: float = 0.0005, fast_alpha: float = 0.02):
        self.detector_factory = detector_factory
        self.delta = delta
        self.slow_alpha = slow_alpha
        self.fast_alpha = fast_alpha
        self._streams: dict[tuple[str, str], _Stream] = {}
        if detector_factory is None:
            # imported now, when the monitor is made: importing river.drift pulls in River's
            # datasets (and SQLAlchemy) and takes about a second, which the first event of a
            # new (segment, signal) would otherwise wait for
            import river.drift  # noqa: F401

    def _new_detector(self):
        if self.detector_factory is not None:
            return self.detector_factory()
        from river.drift import ADWIN

        return ADWIN(delta=self.delta)

    def update(self, segment: str, signal: str, value: float) -> DriftAlert | None:
        alerts = self.update_many(segment, signal, (value,))
        return alerts[0] if alerts else None

    def update_many(self, segment: str, signal: str, values) -> list[DriftAlert]:
        """One (segment, signal)'s observations in order (as :meth:`update` one at a time, in one
        loop): the alerts they raise."""
        if signal not in SIGNALS:
            raise ValueError(f"signal is {signal!r}: must be one of {', '.join(SIGNALS)}")
        st = self._streams.get((segment, signal))
        if st is None:
            st = self._streams[(segment, signal)] = _Stream(self._new_detector())
        detector = st.detector
        observe = detector.update
        slow_alpha, fast_alpha = self.slow_alpha, self.fast_alpha
        n, n_slow, slow, fast = st.n, st.n_slow, st.slow, st.fast
        alerts = []
        for value in values:
            n += 1
            n_slow += 1
            # A plain mean until there are 1/alpha observations, an exponential average after.
            slow += max(slow_alpha, 1.0 / n_slow) * (value - slow)
            fast += max(fast_alpha, 1.0 / n) * (value - fast)
            observe(value)
            if detector.drift_detected:
                alerts.append(DriftAlert(segment, signal, type(detector).__name__, float(slow), float(fast), n))
                slow = fast  # the new level is the reference from now on
                n_slow = int(1 / fast_alpha)
        st.n, st.n_slow, st.slow, st.fast = n, n_slow, slow, fast
        return alerts



class KpiWindows:
    """Sums and counts of each (segment, signal) over fixed windows of ``window_seconds``.

    :meth:`observe` and :meth:`close_due` return the windows they closed, as
    ``(segment, signal, total, count)``.

    >>> w = KpiWindows(window_seconds=10)
    >>> w.observe("s", "ctr", 1.0, now=0.0), w.observe("s", "ctr", 0.0, now=4.0)
    ([], [])
    >>> w.observe("s", "ctr", 1.0, now=10.5)
    [('s', 'ctr', 1.0, 2)]
    """

    def __init__(self, window_seconds: float = 10.0):
        if window_seconds <= 0:
            raise ValueError(f"window_seconds is {window_seconds}: must be > 0")
        self.window_seconds = window_seconds
        self._open: dict[tuple[str, str], list] = {}  # (segment, signal) -> [start, total, count]

    def observe(self, segment: str, signal: str, value: float, now: float) -> list[tuple[str, str, float, int]]:
        return self.add(segment, signal, value, 1, now)

    def add(self, segment: str, signal: str, total: float, count: int,
            now: float) -> list[tuple[str, str, float, int]]:
        """``count`` observations summing to ``total`` at once (a batch's, already summed)."""
        closed = self.close_due(now)
        w = self._open.get((segment, signal))
        if w is None:
            w = self._open[(segment, signal)] = [now, 0.0, 0]
        w[1] += total
        w[2] += count
        return closed

    def close_due(self, now: float) -> list[tuple[str, str, float, int]]:
        closed = []
        for key, (start, total, count) in list(self._open.items()):
            if now - start >= self.window_seconds:
                del self._open[key]
                closed.append((key[0], key[1], total, count))
        return closed


class KpiDrift:
    """The worker's drift watch: :class:`KpiWindows` for the ratio signals, a
    :class:`DriftMonitor` for all four. ``now`` is the clock of the caller (wall time in
    the worker, event time offline).

    >>> kd = KpiDrift(DriftMonitor(), window_seconds=1.0)
    >>> alerts = []
    >>> for n in range(40000):  # 20 impressions a second; the click share jumps from 10% to 40%
    ...     clicked = (n % 10 == 0) if n < 20000 else (n % 5 < 2)
    ...     alerts += kd.observe("s", "ctr", float(clicked), now=n / 20)
    >>> [(a.signal, a.value_before < 0.15, a.value_after > 0.3) for a in alerts]
    [('ctr', True, True)]
    """

    def __init__(self, monitor: "DriftMonitor", window_seconds: float = 10.0):
        self.monitor = monitor
        self.windows = KpiWindows(window_seconds)

    def observe(self, segment: str, signal: str, value: float, now: float) -> list[DriftAlert]:
        return self.observe_many([(segment, signal, value)], now)

    def observe_many(self, observations, now: float) -> list[DriftAlert]:
        """(segment, signal, value) observations in order; the windowed signals summed per
        (segment, signal) first (the same windows as one at a time, in one step), the others
        fed to their detectors in one loop each (each detector sees them in order; the alerts
        come per detector, not in the observations' order)."""
        alerts: list[DriftAlert] = []
        sums: dict[tuple[str, str], list] = {}
        each: dict[tuple[str, str], list[float]] = {}  # the others' values, in order, per detector
        for segment, signal, value in observations:
            if signal in WINDOWED:
                acc = sums.get((segment, signal))
                if acc is None:
                    sums[(segment, signal)] = [value, 1]
                else:
                    acc[0] += value
                    acc[1] += 1
            else:
                values = each.get((segment, signal))
                if values is None:
                    each[(segment, signal)] = [value]
                else:
                    values.append(value)
        for (segment, signal), values in each.items():
            alerts += self.monitor.update_many(segment, signal, values)
        for (segment, signal), (total, count) in sums.items():
            alerts += self._feed(self.windows.add(segment, signal, total, count, now))
        return alerts

    def close_due(self, now: float) -> list[DriftAlert]:
        return self._feed(self.windows.close_due(now))

    def _feed(self, closed) -> list[DriftAlert]:
        alerts = []
        for segment, signal, total, count in closed:
            ones = int(round(total))
            # the j-th observation of the window: 1 where the running share of ones steps up
            alerts += self.monitor.update_many(segment, signal, [float((j + 1) * ones // count - j * ones // count)
                                                                 for j in range(count)])
        return alerts
