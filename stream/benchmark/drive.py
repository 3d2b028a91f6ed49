"""How the pipeline benchmark drives a phase: events encoded once, produced as fast as the
producer goes or at a fixed rate, and the drain timed by polling a counter."""

from __future__ import annotations

import time

from stream.benchmark.group import Member, check_running
from stream.config import Settings

__all__ = ["time_until", "encoded", "produce_all", "drain_timed", "produce_at"]


def time_until(counter, n: int, log, label: str, members: list[Member], timeout: float = 600.0,
               passed: dict[int, tuple[float, int] | None] | None = None) -> tuple[float, float]:
    """Poll ``counter()`` until it reaches n; returns (time of first progress, time of n). With
    ``passed`` (mark -> None), each mark's value becomes (time, count) of the first poll that saw
    the counter at or past it."""
    first = None
    last_print = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = counter()
        now = time.monotonic()
        if value > 0 and first is None:
            first = now
        if passed:
            for mark in [m for m, at in passed.items() if at is None and value >= m]:
                passed[mark] = (now, value)
        if value >= n:
            return first or now, now
        check_running(members, f"{label} at {value:,}/{n:,}")
        if now - last_print >= 2.0:
            log(f"  {label}: {value:,}/{n:,}")
            last_print = now
        time.sleep(0.02)
    raise RuntimeError(f"{label}: reached only {counter():,} of {n:,} within {timeout:.0f} s")


def encoded(events) -> list[tuple[str, bytes, bytes]]:
    """Events as (logical topic, key, value bytes), checked against the contract once, so that
    producing them in a phase is only handing bytes to librdkafka."""
    from stream.contract import TOPIC_OF
    from stream.contract import encode, validate_event

    out = []
    for etype, payload in events:
        validate_event(etype, payload)
        out.append((TOPIC_OF[etype], str(payload["user_id"]).encode(), encode(payload)))
    return out


def produce_all(s: Settings, events: list[tuple[str, bytes, bytes]]) -> None:
    """Produce ``events`` as fast as the producer goes (delivery included)."""
    from producers.sdk import EventProducer

    with EventProducer(s) as producer:
        for topic, key, value in events:
            producer.send_raw(topic, key, value)


def drain_timed(s: Settings, events: list, counter, log, label: str, members: list[Member], results: dict,
                 name: str) -> tuple[float, float]:
    """Produce ``events`` (in a thread) while the phase's processes drain them; returns (time of the
    first event handled, time of the last). The processes are ready before the first event is
    produced, so producing overlaps the drain: when they drain faster than the producer goes, the
    rate is partly the producer's. So the drain rate after producing ended is recorded too
    (``<name>_after_produce``: events left then / time to handle them), when at least a fifth
    of the events were left. And the rate over the last three quarters of the events
    (``<name>_last_three_quarters``): a phase can start faster than it goes on (the no-op agent
    does, docs/PERFORMANCE.md), and a short run would then time mostly its start."""
    import threading

    n = len(events)
    box: dict = {}

    def produce() -> None:
        started = time.monotonic()
        try:
            produce_all(s, events)
        except BaseException as exc:  # re-raised in the driver's thread below
            box["error"] = exc
        box["ended"], box["handled"] = time.monotonic(), counter()
        box["seconds"] = box["ended"] - started

    producer = threading.Thread(target=produce, name=f"produce {label}", daemon=True)
    producer.start()
    quarter = max(n // 4, 1)
    passed: dict[int, tuple[float, int] | None] = {quarter: None}
    t0, t1 = time_until(counter, n, log, label, members, passed=passed)
    producer.join(60)
    if "error" in box:
        raise RuntimeError(f"{label}: producing the events failed") from box["error"]
    left = n - box.get("handled", n)
    results[f"{name}_produce_seconds"] = box.get("seconds", float("nan"))
    log(f"  {label}: {n:,} events produced in {box.get('seconds', float('nan')):.2f} s, "
        f"{left:,} of them not handled yet then")
    if left >= n / 5 and t1 > box["ended"]:
        results[f"{name}_after_produce"] = left / (t1 - box["ended"])
    at, value = passed[quarter] or (t1, n)
    if t1 > at and value < n:
        results[f"{name}_last_three_quarters"] = (n - value) / (t1 - at)
    return t0, t1


def produce_at(s: Settings, events: list[tuple[str, bytes, bytes]], rate: float) -> float:
    """Produce ``events`` (as :func:`encoded` makes them) at ``rate`` per second; returns the rate
    achieved. They are generated and encoded beforehand: the load generator runs on the workers'
    machine, and making each event as it went cost it about a third of a core at 1,000 events/s."""
    from producers.sdk import EventProducer

    start = time.monotonic()
    with EventProducer(s, linger_ms=1) as producer:
        for k, (topic, key, value) in enumerate(events):
            ahead = k / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
            producer.send_raw(topic, key, value)
    return len(events) / (time.monotonic() - start)
