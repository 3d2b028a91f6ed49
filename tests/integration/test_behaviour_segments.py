"""Behaviour segments in a real worker: users without a profile are clustered online (River
k-means, state in Redis), each signal event counted once, moves counted, and the segment
used for their KPIs and lists."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import redis

from producers.sdk import EventProducer
from stream.signals import signal_weight
from stream.state.keys import Keys
from stream.state.packing import unpack_user
from tests.helpers import applied, behaviour_events, wait_for, worker_metric

pytestmark = pytest.mark.integration


def _publish(settings, events, rate: float = 300.0) -> None:
    """At a steady rate, as live traffic: batches of tens of events, each user's behaviour
    stepping the clusterer once per batch. A burst gives the clusterer a few dozen steps: 1,500
    events at 1,000 events/s reached a just-started worker as 4 batches, and more than half of
    the dwells came before any user had a segment."""
    start = time.monotonic()
    with EventProducer(settings) as producer:
        for n, ev in enumerate(events):
            if n % 50 == 0:
                time.sleep(max(0.0, n / rate - (time.monotonic() - start)))
            producer.send(ev.type, ev.raw)


def test_users_without_a_profile_get_behaviour_segments(isolated, worker_factory):
    settings = isolated.model_copy(update={"behaviour_segments": 3})
    worker = worker_factory(settings).start()
    events = behaviour_events(3000, seed=7)
    half = len(events) // 2  # the switchers click in the first half, skip in the second
    _publish(settings, events[:half])
    wait_for(lambda: applied(settings) >= half, 90, "the first half applied")
    _publish(settings, events[half:])
    wait_for(lambda: applied(settings) >= len(events), 90, "every event applied")

    store = redis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.redis_prefix)
    model = {k.decode(): v.decode() for k, v in store.hgetall(keys.behaviour).items()}
    signals = sum(1 for ev in events if signal_weight(ev) != 0)
    assert model["seeded"] == "1" and not store.exists(keys.behaviour_warmup)
    assert float(model["events"]) == signals  # each event once in the clusterer ...
    users = {ev.user_id for ev in events}
    rows = {u: unpack_user(u, store.get(keys.user(u)), dim=settings.mf_factors).behaviour for u in users}
    assert sum(r.events for r in rows.values()) == signals  # ... and in its user's behaviour
    assert float(model["users"]) == len(users)

    segment = {u: r.segment for u, r in rows.items()}
    assert all(s.startswith("behaviour-") for s in segment.values())
    # which users share a segment depends on how the topics interleave (it differs from run to
    # run); that the clusterer assigns what the offline one does is tests/unit/test_behaviour_segments.py
    assert len(set(segment.values())) >= 2
    assert worker_metric(worker.url, "streamrec_segment_moves_total") > 0  # the switchers moved

    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    # KPIs go by the segment a user was in when the event was applied: every dwell counted once,
    # most of them under a behaviour segment (a user has none before the clusterer's warm-up and
    # their third event). Which segment the clickers hold at the end moves with the switchers.
    dwell = {}
    for line in metrics.splitlines():
        if line.startswith("streamrec_events_total{") and 'type="dwell"' in line:
            dwell[line.split('segment="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    assert sum(dwell.values()) == sum(1 for ev in events if ev.type == "dwell"), dwell
    in_behaviour = sum(v for seg, v in dwell.items() if seg.startswith("behaviour-"))
    assert in_behaviour > 0.5 * sum(dwell.values()), dwell
    labels = [line for line in metrics.splitlines() if line.startswith("streamrec_behaviour_segment_label{")]
    assert len(labels) == 3 and all(line.endswith(" 1.0") and "-dwell/" in line for line in labels)
    with urllib.request.urlopen(f"{worker.url}/recommendations/skipper0?k=3", timeout=5) as resp:
        assert json.loads(resp.read())["segment"] == segment["skipper0"]
