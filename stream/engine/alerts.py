"""Drift alerts in the worker: KPI observations per segment into River detectors, alerts out.

The detectors (:mod:`stream.drift`) see each applied event's KPI signals and each trial's hit;
a detection counts in ``streamrec_drift_alerts_total``, holds ``streamrec_drift_active`` at 1 for
``active_seconds``, logs a warning and goes to the alerts.drift topic.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable, Protocol

from stream.drift import DriftAlert, DriftMonitor, KpiDrift

__all__ = ["DriftWatch", "AlertSink"]

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    async def drift_alert(self, segment: str, payload: bytes) -> None: ...


class DriftWatch:
    """Per-(segment, signal) detectors, their active gauge, and the alerts waiting to be sent."""

    def __init__(self, monitor: DriftMonitor, metrics, *, window_seconds: float = 10.0, active_seconds: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kpis = KpiDrift(monitor, window_seconds)
        self.metrics = metrics
        self.active_seconds = active_seconds
        self.clock = clock
        self._active_until: dict[tuple[str, str], float] = {}
        self._pending: list[DriftAlert] = []

    @classmethod
    def from_settings(cls, settings, metrics) -> "DriftWatch":
        """Detectors with the settings' sensitivity, window and alert duration (STREAMREC_DRIFT_*)."""
        return cls(DriftMonitor(delta=settings.drift_delta), metrics, window_seconds=settings.drift_window_seconds,
                   active_seconds=settings.drift_active_seconds)

    def observe_many(self, observations: list[tuple[str, str, float]]) -> None:
        """A batch's (segment, signal, value) observations, in order."""
        active = self._active_until
        for key in {(seg, sig) for seg, sig, _ in observations} - active.keys():
            active[key] = 0.0
            self.metrics.drift_active.labels(*key).set(0)  # the series exists before any alert
        for alert in self.kpis.observe_many(observations, now=self.clock()):
            self._raise(alert)

    def _raise(self, alert: DriftAlert) -> None:
        self._pending.append(alert)
        self._active_until[(alert.segment, alert.signal)] = self.clock() + self.active_seconds
        self.metrics.drift_alerts_total.labels(alert.segment, alert.signal, alert.detector).inc()
        self.metrics.drift_active.labels(alert.segment, alert.signal).set(1)
        log.warning("drift: segment %s, %s moved from %.4f to %.4f (%s)", alert.segment, alert.signal,
                    alert.value_before, alert.value_after, alert.detector)

    async def publish(self, sink: AlertSink) -> int:
        """Close due KPI windows, send pending alerts, clear the active gauge of old ones."""
        now = self.clock()
        for alert in self.kpis.close_due(now):
            self._raise(alert)
        for key, until in self._active_until.items():
            if 0.0 < until <= now:
                self._active_until[key] = 0.0
                self.metrics.drift_active.labels(*key).set(0)
        sent = 0
        while self._pending:
            alert = self._pending[0]
            await sink.drift_alert(alert.segment, json.dumps(alert.to_message()).encode())
            self._pending.pop(0)
            sent += 1
        return sent
