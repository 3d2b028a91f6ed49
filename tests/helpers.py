"""Shared test helpers: settings <-> environment, free ports, waiting."""

from __future__ import annotations

import os
import time
from typing import Callable, NoReturn

import pytest

from stream.config import Settings
from stream.stack.process import free_port

__all__ = ["free_port", "wait_for", "in_ci", "unavailable", "start_or_unavailable", "stats", "applied", "learned", "worker_metric", "Clock",
           "run_module", "publish_world", "events_in_records", "survives_a_redis_outage", "user_records", "redis_of"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str) -> NoReturn:
    """Something a test needs (a service, a binary, an extra) is missing: under CI=true that
    fails the test; elsewhere the test is skipped, saying what is missing."""
    if in_ci():
        pytest.fail(f"CI=true and {what}: scripts/bootstrap installs it, the stack code starts it", pytrace=False)
    pytest.skip(what)


def start_or_unavailable(service, what: str) -> None:
    """Start a service of the test's own (stream.stack); one that cannot start is
    :func:`unavailable` (a failure under CI=true)."""
    from stream.stack.process import StackError

    try:
        service.start()
    except StackError as exc:
        unavailable(f"{what} could not start: {exc}")


def stats(settings: Settings) -> dict[str, int]:
    """The worker's counters in Redis under this test's prefix."""
    from stream.state.keys import Keys
    from stream.state.stats import read_stats

    return read_stats(settings.redis_client(), Keys(settings.redis_prefix))


def applied(settings: Settings) -> int:
    """Events the worker applied (first seen) under this test's prefix."""
    from stream.state.stats import applied_total

    return applied_total(stats(settings))


def redis_of(kind: str, request) -> Settings:
    """A contract test's settings for a state ``kind``: "redis-cluster" on the test stack's Redis
    Cluster (fixture ``isolated_cluster``), any other on its single Redis (``isolated``)."""
    return request.getfixturevalue("isolated_cluster" if kind == "redis-cluster" else "isolated")


def user_records(settings: Settings) -> list:
    """Every user's record in Redis under the test's prefix (:class:`stream.state.base.UserRecord`)."""
    from stream.state.packing import unpack_user

    client = settings.redis_client()
    prefix = f"{settings.redis_prefix}:user:"
    keys = [k for k in client.scan_iter(f"{prefix}*", count=1000) if k.count(b":") == prefix.count(":")]
    blobs = client.mget(keys) if keys else []
    client.close()
    return [unpack_user(key.decode()[len(prefix):], blob, dim=settings.mf_factors)
            for key, blob in zip(keys, blobs) if blob]


def learned(settings: Settings) -> float:
    """Events the MF model's user rows have learned from, summed over every user row in Redis."""
    return sum(rec.row.n for rec in user_records(settings) if rec.row is not None)


def drop_topics(settings: Settings) -> None:
    """Delete the topics of a test's namespace (and the Faust app's internal ones)."""
    from stream.topics import drop_topics as drop

    drop(settings)


def worker_metric(url: str, name: str, headers: dict[str, str] | None = None) -> float:
    """A metric of a running worker, summed over its label sets (0.0 when absent); ``headers``:
    the bearer token of a worker whose /metrics asks for it."""
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(f"{url}/metrics", headers=headers or {}), timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "))


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25):
    """Poll until ``predicate()`` is truthy; fail with ``what`` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {last!r})")


def behaviour_events(n: int, seed: int):
    """Validated events of three behaviours: heavy clickers with long dwell (clicker0..7), light
    users who mostly skip (skipper0..19) and switchers (switcher0..19) who click in the first
    half of the stream and skip in the second."""
    import json

    import numpy as np

    from stream.contract import make_event, validate_event

    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        group = rng.choice(["clicker", "skipper", "switcher"], p=[0.4, 0.4, 0.2])
        user = f"{group}{rng.integers(0, 8 if group == 'clicker' else 20)}"
        clicky = group == "clicker" or (group == "switcher" and t < n // 2)
        if clicky:
            kind, extra = ("dwell", {"seconds": float(rng.uniform(60, 180))}) if rng.random() < 0.5 else ("click", {})
        else:
            kind, extra = ("skip", {"after_seconds": 2.0}) if rng.random() < 0.8 else ("click", {})
        raw = make_event(kind, event_id=f"e{t}", user_id=user, item_id=f"i{rng.integers(0, 50)}", ts=1.0 + t, **extra)
        out.append(validate_event(kind, json.dumps(raw).encode()))
    return out


class Clock:
    """A clock a test moves by hand (``clock.now += 3600``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_module(settings: Settings, log, module: str, *args: str):
    """``python -m module args`` with the settings' environment from the project's root; its
    output appended to ``log``; the finished process."""
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-m", module, *args], env=settings.as_env(),
                         cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    with open(log, "a") as fh:
        fh.write(out.stdout + out.stderr)
    return out


def publish_world(settings: Settings, world, events, raw=()) -> "object":
    """A simulated world's profiles, catalogue and ``events`` through the producer SDK, then
    ``raw`` (topic, key, value) messages as they are; the producer's stats (``sent``,
    ``delivered``)."""
    from producers.sdk import EventProducer

    with EventProducer(settings) as producer:
        for payload in world.profiles(ts=time.time()):
            producer.send("user", payload)
        for payload in world.catalogue(ts=time.time()):
            producer.send("item", payload)
        for etype, payload in events:
            producer.send(etype, payload)
        for topic, key, value in raw:
            producer.send_raw(topic, key, value)
    return producer.stats



def events_in_records(settings: Settings) -> int:
    """Events applied, summed over every user's record (each event counts once, in its user's)."""
    return sum(rec.events for rec in user_records(settings))


def survives_a_redis_outage(settings: Settings, worker_factory, kill: Callable[[], object],
                            restart: Callable[[], object], down_seconds: float = 3.0) -> None:
    """A worker on ``settings`` gets 12,000 simulator events; after 1,500 are applied, Redis is
    killed (``kill``) and, ``down_seconds`` later, started again (``restart``). The worker must
    wait the outage out, never take it for a poison event (no batch isolated, nothing
    dead-lettered), and apply every event once (the stats and the users' records agree)."""
    import urllib.request

    from producers.simulator import World, WorldConfig

    world = World(WorldConfig(n_users=300, n_items=200, seed=12))
    events = list(world.generate(12_000, start_ts=1.7e9, step_seconds=0.05, run_id="outage"))
    worker = worker_factory(settings).start()
    publish_world(settings, world, events)
    wait_for(lambda: applied(settings) >= 1_500, 60, "1,500 events applied")
    kill()
    time.sleep(down_seconds)
    restart()
    wait_for(lambda: applied(settings) >= len(events), 180, f"{len(events)} events applied")
    assert applied(settings) == len(events) and events_in_records(settings) == len(events)
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    rejected = [line for line in metrics.splitlines()
                if line.startswith("streamrec_invalid_events_total{") and not line.endswith(" 0.0")]
    assert not rejected, rejected
    assert worker.proc.poll() is None
    log = worker.log_path.read_text(errors="replace")
    assert "isolating the failing events" not in log, log[log.find("isolating") - 2000:][:3000]


def experiment_toml(name: str = "e", variants: tuple[str, str] = ("a", "b"), shares: tuple[float, float] = (0.5, 0.5),
                    segments: str = '["*"]', overrides: str = "") -> str:
    """An experiments file (TOML) of one experiment with two variants; ``overrides``: the second
    variant's, as a TOML inline table's contents."""
    second = f"\noverrides = {{ {overrides} }}" if overrides else ""
    return (f'[[experiment]]\nname = "{name}"\nsegments = {segments}\n'
            f'[[experiment.variant]]\nname = "{variants[0]}"\nshare = {shares[0]}\n'
            f'[[experiment.variant]]\nname = "{variants[1]}"\nshare = {shares[1]}{second}\n')


def user_side_update(params, items=("a", "b"), user: str = "u", popularity: bool = False):
    """An item update as a user side's batch makes it: MF gradients of ``user``'s positives on
    ``items``, their pairs and counts (and popularity, 1, 2, ... at ref 5.0, when asked)."""
    from stream.models.items import ItemTable, ItemUpdate

    user_side = ItemTable(params)
    grads = user_side.mf.learn_users([user_side.mf.new_user(user)], [0] * len(items), list(items),
                                     [1.0] * len(items))
    u = ItemUpdate(grads)
    a, b = list(items[1:]), list(items[:-1])
    u.add_pairs(a + b, b + a, [1.0] * (2 * len(a)))
    u.add_counts(list(items), [1.0] * len(items))
    if popularity:
        u.add_popularity(list(items), [float(n + 1) for n in range(len(items))], ref=5.0)
    return u
