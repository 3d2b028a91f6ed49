"""Drift detection on the simulator, with an injected change of tastes (known answer)."""

from __future__ import annotations

import pytest

from producers.simulator import World, WorldConfig
from stream.drift import DriftMonitor
from stream.evaluation.drift import run_drift

BASE = dict(n_users=2000, n_items=500, n_segments=4, n_categories=8, seed=7)


def test_injected_drift_is_detected_soon_after_and_not_before():
    """Seed 7, tastes of segment 0 rotate at event 20,000 of 40,000: measured first alert in that
    segment 5,567 events after the change (docs/EVALUATION.md lists other seeds)."""
    run = run_drift(WorldConfig(**BASE, drift_at=20_000, drift_segment=0), 40_000)
    assert run.drifted_at is not None and 20_000 <= run.drifted_at < 20_050
    assert run.before_change() == []  # no alarm, in any segment, before the change
    delay = run.first_after(run.drift_segment)
    assert delay is not None and delay <= 7_000, delay


def test_a_stationary_world_raises_no_alarm():
    run = run_drift(WorldConfig(**BASE), 40_000)
    assert run.alerts == [] and run.observations > 50_000


def test_rotation_changes_only_the_drifted_segment():
    world = World(WorldConfig(**BASE))
    before = world.user_vectors.copy()
    world.rotate_segment(1)
    moved = (world.user_vectors != before).any(axis=1)
    assert (moved == (world.user_segment_index == 1)).all()


def test_unknown_signal_is_refused():
    with pytest.raises(ValueError, match="signal"):
        DriftMonitor().update("s", "revenue", 1.0)


def test_many_at_once_is_one_at_a_time():
    """update_many and KpiDrift.observe_many give the alerts (levels, counts) of one update at a time."""
    import random

    from stream.drift import KpiDrift

    rng = random.Random(5)
    obs = []
    for n in range(30_000):  # two segments; dwell and hit rate per event, ctr windowed; shifts halfway
        seg = "a" if n % 3 else "b"
        late = n > 15_000
        obs.append((seg, "hit_rate", float(rng.random() < (0.5 if late and seg == "a" else 0.2))))
        obs.append((seg, "dwell", rng.random() * (0.3 if late else 1.0)))
        obs.append((seg, "ctr", float(rng.random() < 0.1)))
    one, many = KpiDrift(DriftMonitor(), window_seconds=5.0), KpiDrift(DriftMonitor(), window_seconds=5.0)
    alerts_one, alerts_many = [], []
    for start in range(0, len(obs), 600):  # batches of 200 events, a second apart
        batch = obs[start:start + 600]
        for o in batch:
            alerts_one += one.observe(*o, now=start / 600)
        alerts_many += many.observe_many(batch, now=start / 600)
    key = lambda a: (a.segment, a.signal, a.events_seen, a.value_before, a.value_after)  # noqa: E731
    assert len(alerts_one) >= 3
    assert sorted(map(key, alerts_one)) == sorted(map(key, alerts_many))
    single = DriftMonitor()
    values = [v for s, sig, v in obs if (s, sig) == ("a", "hit_rate")]
    from_one = [a for v in values if (a := single.update("a", "hit_rate", v)) is not None]
    assert [key(a) for a in from_one] == [key(a) for a in DriftMonitor().update_many("a", "hit_rate", values)]
