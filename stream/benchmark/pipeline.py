"""`streamrec bench pipeline`: the worker's throughput against a no-op Faust agent on the same
topic, and event-to-Redis freshness at a fixed produce rate, all measured in one run.

    (a) a no-op agent (stream/benchmark/noop.py) drains N pre-filled simulator events
    (a') the no-op agent, caught up, gets events at the fixed rate of (c): how old events are
         when it handles them (Kafka create time -> its batch), the floor under (c)
    (b) the real worker processes the same N events (validate, dedupe, apply, push)
    (c) the worker, caught up, gets events at a fixed rate; the freshness histogram
        (Kafka create time -> effect in Redis) over that phase gives p50 and p99

Rates are timed by the driver from the first event handled to the N-th, so worker start-up
is not counted. The figure that compares across machines is the ratio (b)/(a).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from stream.config import Settings
from stream.stack.process import free_port, stop_child, wait_worker_ready

__all__ = ["run_pipeline_bench", "histogram_quantile"]

ROOT = Path(__file__).resolve().parents[2]


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus-style quantile from cumulative (upper bound, count) buckets, linear within a bucket.

    >>> round(histogram_quantile(0.5, [(0.1, 0), (0.2, 10), (float("inf"), 10)]), 6)
    0.15
    """
    total = buckets[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / max(count - prev_count, 1e-12)
        prev_bound, prev_count = bound, count
    return prev_bound


def _scrape_buckets(port: int, name: str) -> list[tuple[float, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(out)


def _scrape_sums(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Each named series summed over its label sets (e.g. a histogram's ``_sum`` and ``_count``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in out:
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


_BATCH_SERIES = ("streamrec_batch_events_sum", "streamrec_batch_events_count", "streamrec_batch_seconds_sum")


def _time_until(counter, n: int, log, label: str, proc: subprocess.Popen, timeout: float = 600.0) -> tuple[float, float]:
    """Poll ``counter()`` until it reaches n; returns (time of first progress, time of n)."""
    first = None
    last_print = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = counter()
        now = time.monotonic()
        if value > 0 and first is None:
            first = now
        if value >= n:
            return first or now, now
        if proc.poll() is not None:
            raise RuntimeError(f"{label}: the process under test exited with {proc.returncode} at {value:,}/{n:,}")
        if now - last_print >= 2.0:
            log(f"  {label}: {value:,}/{n:,}")
            last_print = now
        time.sleep(0.02)
    raise RuntimeError(f"{label}: reached only {counter():,} of {n:,} within {timeout:.0f} s")


def run_pipeline_bench(base: Settings, *, n_events: int = 50_000, fresh_rate: float = 5_000.0,
                       fresh_seconds: float = 20.0, log=print) -> dict[str, float]:
    import redis

    from producers.sdk import EventProducer
    from producers.simulator import World, WorldConfig
    from stream.state.keys import Keys
    from stream.state.stats import applied_total, read_stats
    from stream.topics import ensure_topics

    tag = uuid.uuid4().hex[:8]
    s = base.model_copy(update={"app_id": f"bench-{tag}", "topic_prefix": f"bench{tag}.",
                                "redis_prefix": f"bench:{tag}", "web_port": free_port(),
                                "datadir": str(base.cache_path / "bench" / tag)})
    ensure_topics(s, quiet=True)
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    keys = Keys(s.redis_prefix)
    world = World(WorldConfig(n_users=10_000, n_items=2_000, seed=1))
    log(f"pipeline benchmark {tag}: {n_events:,} events, {s.partitions} partitions per topic")

    started = time.monotonic()
    with EventProducer(s) as producer:
        for etype, payload in world.generate(n_events, run_id=f"bench{tag}", start_ts=time.time()):
            producer.send(etype, payload)
    log(f"  pre-filled {n_events:,} events in {time.monotonic() - started:.1f} s")
    results: dict[str, float] = {"events": float(n_events)}

    # (a) the no-op agent
    logs = Path(s.datadir)
    logs.mkdir(parents=True, exist_ok=True)
    log(f"  logs in {logs}")
    noop = subprocess.Popen([sys.executable, "-m", "faust", "-A", "stream.benchmark.noop", "worker", "-l", "warn",
                             "--web-port", str(s.web_port)], env=s.as_env(), cwd=ROOT,
                            stdout=open(logs / "noop.log", "ab"), stderr=subprocess.STDOUT)
    noop_key = f"{s.redis_prefix}:bench:noop"
    n_fresh = int(fresh_rate * fresh_seconds)
    fresh_events = iter(world.generate(None, run_id=f"fresh{tag}"))
    try:
        t0, t1 = _time_until(lambda: int(client.get(noop_key) or 0), n_events, log, "(a) no-op drain", noop)
        results["noop_events_per_s"] = n_events / max(t1 - t0, 1e-9)
        log(f"  (a) no-op agent: {results['noop_events_per_s']:,.0f} events/s")
        # (a') the same fixed rate as (c), through the agent that does nothing
        client.delete(f"{noop_key}:age")
        results["noop_fresh_rate_achieved"] = _produce_at(s, fresh_events, n_fresh, fresh_rate)
        _time_until(lambda: int(client.get(noop_key) or 0), n_events + n_fresh, log, "(a') no-op at a fixed rate", noop)
        ages = _noop_ages(client, noop_key)
        results["noop_freshness_p50_s"] = histogram_quantile(0.5, ages)
        results["noop_freshness_p99_s"] = histogram_quantile(0.99, ages)
        log(f"  (a') no-op agent at {results['noop_fresh_rate_achieved']:,.0f} events/s produced: event age at its "
            f"batch p50 {results['noop_freshness_p50_s'] * 1000:.0f} ms, p99 {results['noop_freshness_p99_s'] * 1000:.0f} ms")
    finally:
        stop_child(noop, timeout=60)

    # (b) the real worker on the same events
    def applied() -> int:
        return applied_total(read_stats(client, keys), with_duplicates=True)

    worker = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], env=s.as_env(), cwd=ROOT,
                              stdout=open(logs / "worker.log", "ab"), stderr=subprocess.STDOUT)
    try:
        t0, t1 = _time_until(applied, n_events, log, "(b) full pipeline", worker)
        results["pipeline_events_per_s"] = n_events / max(t1 - t0, 1e-9)
        results["ratio_b_over_a"] = results["pipeline_events_per_s"] / results["noop_events_per_s"]
        log(f"  (b) full pipeline: {results['pipeline_events_per_s']:,.0f} events/s "
            f"= {results['ratio_b_over_a']:.2f} x the no-op agent")

        # (c) freshness at a fixed rate, the worker caught up (with (a')'s events too)
        if not wait_worker_ready(s.web_port, 120, worker, s.http_headers()):
            raise RuntimeError("benchmark worker did not become ready")
        _time_until(applied, n_events + n_fresh, log, "(b) catching up with (a')'s events", worker)
        before = _scrape_buckets(s.web_port, "streamrec_event_to_applied_seconds")
        batches_before = _scrape_sums(s.web_port, _BATCH_SERIES)
        achieved = _produce_at(s, fresh_events, n_fresh, fresh_rate)
        produced_at = time.monotonic()
        _, done_at = _time_until(applied, n_events + 2 * n_fresh, log, "(c) freshness phase", worker)
        after = _scrape_buckets(s.web_port, "streamrec_event_to_applied_seconds")
        batches = {k: v - batches_before[k] for k, v in _scrape_sums(s.web_port, _BATCH_SERIES).items()}
        n_batches = max(batches["streamrec_batch_events_count"], 1.0)
        # what the worker did meanwhile: how big its batches were, how long each took, and
        # how long it went on after the last event was produced
        results["fresh_batch_events_mean"] = batches["streamrec_batch_events_sum"] / n_batches
        results["fresh_batch_seconds_mean"] = batches["streamrec_batch_seconds_sum"] / n_batches
        results["fresh_drain_after_produce_s"] = max(0.0, done_at - produced_at)
        delta = [(b, c - dict(before).get(b, 0.0)) for b, c in after]
        results["fresh_rate_target"] = fresh_rate
        results["fresh_rate_achieved"] = achieved
        results["freshness_p50_s"] = histogram_quantile(0.5, delta)
        results["freshness_p99_s"] = histogram_quantile(0.99, delta)
        log(f"  (c) at {achieved:,.0f} events/s produced: event-to-Redis p50 "
            f"{results['freshness_p50_s'] * 1000:.0f} ms, p99 {results['freshness_p99_s'] * 1000:.0f} ms")
    finally:
        stop_child(worker, timeout=60)
        _cleanup(s, client)
    return results


def _produce_at(s: Settings, events, n: int, rate: float) -> float:
    """Produce ``n`` of ``events`` at ``rate`` per second; returns the rate achieved."""
    from producers.sdk import EventProducer

    start = time.monotonic()
    with EventProducer(s, linger_ms=1) as producer:
        for k in range(n):
            etype, payload = next(events)
            ahead = k / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
            producer.send(etype, payload)
    return n / (time.monotonic() - start)


def _noop_ages(client, key: str) -> list[tuple[float, float]]:
    """The no-op agent's event ages as cumulative (upper bound, count) buckets."""
    from stream.metrics import FRESHNESS_BUCKETS

    counts = {int(j): int(n) for j, n in client.hgetall(f"{key}:age").items()}
    bounds = list(FRESHNESS_BUCKETS) + [float("inf")]
    out, total = [], 0
    for j, bound in enumerate(bounds):
        total += counts.get(j, 0)
        out.append((bound, float(total)))
    return out


def _cleanup(s: Settings, client) -> None:
    from confluent_kafka.admin import AdminClient

    from stream.config import TOPIC_NAMES

    try:
        AdminClient(s.kafka_client_config()).delete_topics([s.topic(t) for t in TOPIC_NAMES], operation_timeout=30)
    except Exception:
        pass
    for key in client.scan_iter(f"{s.redis_prefix}:*", count=1000):
        client.delete(key)


def main_bench_pipeline(settings: Settings, args) -> int:
    from stream.stack import Stack, StackError

    try:
        Stack(settings).up(log=lambda m: print(f"  {m}", file=sys.stderr))
    except StackError as exc:
        print(f"streamrec bench pipeline: {exc}", file=sys.stderr)
        return 2
    results = run_pipeline_bench(settings, n_events=args.events, fresh_rate=args.rate, fresh_seconds=args.seconds,
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(results, indent=2))
    return 0
