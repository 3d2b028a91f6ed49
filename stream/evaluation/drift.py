"""Measuring drift detection on the simulator: detection delay after an injected change, and the
false-alarm rate of a stationary run, with the same DriftMonitor the worker uses.

The KPI streams are the worker's, through the same KpiDrift (ctr and skip_rate counted over
event-time windows, dwell and hit_rate event by event): ctr, skip_rate and dwell from the
events, and hit_rate from prequential trials against a segment-popularity ranking (decayed
counts, the foundation's model), computed before each event is learned.

    python -m stream.evaluation.drift          # prints both figures as JSON
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import numpy as np

from producers.simulator import World, WorldConfig
from stream.drift import DriftAlert, DriftMonitor, KpiDrift, signal_values

__all__ = ["DriftRun", "run_drift", "drift_report"]


@dataclass
class DriftRun:
    n_events: int
    drifted_at: int | None
    drift_segment: str | None
    alerts: list[tuple[int, DriftAlert]] = field(default_factory=list)  # (event index, alert)
    observations: int = 0

    def first_after(self, segment: str) -> int | None:
        """Events from the change to the first alert in the drifted segment (None: never)."""
        if self.drifted_at is None:
            return None
        for n, alert in self.alerts:
            if n >= self.drifted_at and alert.segment == segment:
                return n - self.drifted_at
        return None

    def before_change(self) -> list[tuple[int, DriftAlert]]:
        cut = self.drifted_at if self.drifted_at is not None else self.n_events
        return [(n, a) for n, a in self.alerts if n < cut]


def run_drift(config: WorldConfig, n_events: int, *, top_k: int = 10, half_life_events: float = 3000.0,
              monitor: DriftMonitor | None = None, window_seconds: float = 10.0, progress: bool = False) -> DriftRun:
    """``window_seconds`` is in event time: the simulator's events are 0.01 s apart, so the default
    10 s window holds 1,000 events of all segments."""
    world = World(config)
    kpi = KpiDrift(monitor or DriftMonitor(), window_seconds)
    user_index = {u: i for i, u in enumerate(world.user_ids)}
    item_index = {it: i for i, it in enumerate(world.item_ids)}
    n_seg = config.n_segments
    pop = np.zeros((n_seg, config.n_items))  # decayed click counts per segment, scaled forward in time
    growth = np.log(2.0) / half_life_events
    seen: dict[int, set[int]] = {}
    offset = 0
    run = DriftRun(n_events, None, world.segment_names[config.drift_segment] if config.drift_at is not None else None)
    for n, (etype, payload) in enumerate(world.generate(n_events)):
        u = user_index[payload["user_id"]]
        seg_i = int(world.user_segment_index[u])
        seg = world.segment_names[seg_i]
        obs = signal_values(etype, payload.get("seconds"))
        if etype == "click":
            i = item_index[payload["item_id"]]
            history = seen.get(u)
            if history:
                scores = pop[seg_i].copy()
                scores[list(history)] = -np.inf
                top = np.argpartition(-scores, top_k)[:top_k]
                obs.append(("hit_rate", float(i in set(top.tolist()))))
            if growth * (n - offset) > 600:  # rescale before exp() overflows
                pop *= np.exp(-growth * (n - offset))
                offset = n
            pop[seg_i, i] += np.exp(growth * (n - offset))  # adding forward in time = decaying the past
            seen.setdefault(u, set()).add(i)
        for signal, value in obs:
            run.observations += 1
            run.alerts.extend((n, alert) for alert in kpi.observe(seg, signal, value, now=payload["ts"]))
        if progress and n and n % 20000 == 0:
            print(f"  drift run: {n:,}/{n_events:,} events, {len(run.alerts)} alerts", file=sys.stderr)
    run.drifted_at = world.drifted_at
    return run


def drift_report(seed: int = 7, n_events: int = 60_000, drift_at: int = 30_000) -> dict:
    """Detection delay with drift injected at ``drift_at``, and false alarms of the same world without it."""
    base = dict(n_users=2000, n_items=500, n_segments=4, n_categories=8, seed=seed)
    drifted = run_drift(WorldConfig(**base, drift_at=drift_at, drift_segment=0), n_events)
    stationary = run_drift(WorldConfig(**base), n_events)
    seg = drifted.drift_segment
    return {
        "events": n_events,
        "drift_injected_at_event": drifted.drifted_at,
        "drifted_segment": seg,
        "events_to_first_alert_in_drifted_segment": drifted.first_after(seg),
        "first_alert_after_change": next(({"signal": a.signal, "detector": a.detector,
                                           "value_before": round(a.value_before, 4),
                                           "value_after": round(a.value_after, 4)}
                                          for n, a in drifted.alerts if n >= drifted.drifted_at and a.segment == seg),
                                         None),
        "alerts_in_drifted_segment_before_change": sum(1 for _, a in drifted.before_change() if a.segment == seg),
        "stationary_alerts": len(stationary.alerts),
        "stationary_observations": stationary.observations,
        "false_alarms_per_100k_observations": round(1e5 * len(stationary.alerts) / max(stationary.observations, 1), 2),
        "stationary_alerts_by_signal": {s: sum(1 for _, a in stationary.alerts if a.signal == s)
                                        for s in ("ctr", "skip_rate", "dwell", "hit_rate")},
    }


if __name__ == "__main__":
    print(json.dumps(drift_report(), indent=2))
