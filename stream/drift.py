"""Drift detection on KPI streams, per segment, with River detectors.

Each (segment, signal) pair has its own detector. The signals, one observation per event:

    ctr        impression -> 0, click -> 1      (its mean rises and falls with click-through)
    skip_rate  dwell -> 0, skip -> 1            (outcome of a played item)
    dwell      log1p(seconds) / log1p(86400)    (dwell time, scaled into [0, 1])
    hit_rate   prequential trial: hit -> 1, miss -> 0

A detection returns a :class:`DriftAlert` naming the segment, signal and detector, with the
signal's level before (a slow moving average) and after (a fast one); the slow average then
restarts from the fast one, so one change gives one alert.

Examples
--------
>>> import random
>>> rng = random.Random(1)
>>> monitor = DriftMonitor(seed=1)
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

__all__ = ["DriftMonitor", "DriftAlert", "SIGNALS", "signal_values"]

SIGNALS = ("ctr", "skip_rate", "dwell", "hit_rate")
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
    seed
        Unused by ADWIN; kept so a seeded detector factory can be swapped in.
    """

    def __init__(self, detector_factory: Callable[[], object] | None = None, *, delta: float = 0.002,
                 slow_alpha: float = 0.0005, fast_alpha: float = 0.02, seed: int = 0):
        self.detector_factory = detector_factory
        self.delta = delta
        self.slow_alpha = slow_alpha
        self.fast_alpha = fast_alpha
        self.seed = seed
        self._streams: dict[tuple[str, str], _Stream] = {}

    def _new_detector(self):
        if self.detector_factory is not None:
            return self.detector_factory()
        from river.drift import ADWIN

        return ADWIN(delta=self.delta)

    def update(self, segment: str, signal: str, value: float) -> DriftAlert | None:
        if signal not in SIGNALS:
            raise ValueError(f"signal is {signal!r}: must be one of {', '.join(SIGNALS)}")
        st = self._streams.get((segment, signal))
        if st is None:
            st = self._streams[(segment, signal)] = _Stream(self._new_detector())
        st.n += 1
        st.n_slow += 1
        # A plain mean until there are 1/alpha observations, an exponential average after.
        st.slow += max(self.slow_alpha, 1.0 / st.n_slow) * (value - st.slow)
        st.fast += max(self.fast_alpha, 1.0 / st.n) * (value - st.fast)
        st.detector.update(value)
        if not st.detector.drift_detected:
            return None
        alert = DriftAlert(segment, signal, type(st.detector).__name__, float(st.slow), float(st.fast), st.n)
        st.slow = st.fast  # the new level is the reference from now on
        st.n_slow = int(1 / self.fast_alpha)
        return alert

    def observations(self, segment: str, signal: str) -> int:
        st = self._streams.get((segment, signal))
        return 0 if st is None else st.n
