"""`streamrec bench pipeline`: the worker's throughput against a no-op Faust agent on the same
events, and event-to-Redis freshness at a fixed produce rate, all measured in one run.

    (a) a no-op agent (stream/benchmark/noop.py, the worker's own Faust settings) drains N
        simulator events
    (a') the no-op agent, caught up, gets events at the fixed rate of (c): how old events are
         when it handles them (Kafka create time -> its batch), the floor under (c)
    (b) the real worker processes the same N events (validate, dedupe, apply, push)
    (c) the worker, caught up, gets events at a fixed rate; the freshness histogram
        (Kafka create time -> effect in Redis) over that phase gives p50 and p99, and the
        tail's make-up: the share of events older than 250 ms, and the batches over 100 ms
        and over 250 ms (streamrec_batch_seconds)

With ``workers`` > 1, (a) and (a') run that many no-op processes and (b) and (c) that many
workers, each set in one consumer group (each process its own web port, datadir and static
membership id). The N events, and those of the fixed-rate phases, are generated and encoded before
anything starts (the load generator runs on the workers' machine: made as it went, it took a
third of a core at 1,000 events/s, now a sixth); each phase's
processes start on topics of their own and join their group, and only once the group has spread
every event partition over all of them are the N events produced (as fast as the producer goes,
in a thread), so no rebalance falls inside the timing. Rates are timed by the driver from the
first event handled to the N-th; the sum over the processes is the figure, and each process's
share is reported too. Producing overlaps the drain, so a phase that drains faster than the
producer goes is partly timing the producer; the drain rate after producing ended is reported
beside it (``*_after_produce``), and so is the rate over the phase's last three quarters of the
events (``*_last_three_quarters``, and their ratio): the no-op agent drains faster in its first
seconds than it goes on, so over a short run (a) times mostly its start. (b) also reports the
workers' mean batch size and time while they drain. The figure that compares across machines is
the ratio (b)/(a).

Beside the rates, where the processes' time went (stream/benchmark/busy.py): how busy the no-op
agents' event loops were over (a); over (b), the workers' loops in batches (working, or waiting
for Redis and Kafka) and between them (Faust's work, or waiting for events); and how idle the
machine was during (b) (Linux' /proc/stat). A loop that waits while the machine is idle is held
up by something other than CPU.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from itertools import islice
from pathlib import Path

from stream.benchmark.busy import TIME_SERIES, loop_shares, machine_cpu, machine_idle_share, time_shares
from stream.benchmark.drive import drain_timed, encoded, produce_at, time_until
from stream.benchmark.group import start_members, stop_members, wait_group_spread
from stream.benchmark.scrape import Rejected, handled_per_worker, scrape_all, scrape_buckets
from stream.config import Settings
from stream.stack.process import wait_worker_ready

__all__ = ["run_pipeline_bench", "histogram_quantile"]


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


_BATCH_SERIES = ("streamrec_batch_events_sum", "streamrec_batch_events_count", "streamrec_batch_seconds_sum")
PUSHED = "streamrec_recommendations_pushed_total"
_DRAIN_SERIES = _BATCH_SERIES + tuple(k for k in TIME_SERIES if k not in _BATCH_SERIES) + (PUSHED,)


def _rates(results: dict, name: str, per_member: list[float], n_events: int, seconds: float) -> None:
    """The sum (``name``) and each process's share (``name_worker<i>``), events/s over the window."""
    results[name] = n_events / max(seconds, 1e-9)
    for i, handled in enumerate(per_member):
        results[f"{name}_worker{i}"] = handled / max(seconds, 1e-9)


def _shares(results: dict, name: str) -> str:
    shares = [v for k, v in sorted(results.items()) if k.startswith(f"{name}_worker")]
    out = "" if len(shares) < 2 else " (per worker " + ", ".join(f"{v:,.0f}" for v in shares) + ")"
    if f"{name}_after_produce" in results:
        out += f"; {results[f'{name}_after_produce']:,.0f} events/s once producing had ended"
    return out


def run_pipeline_bench(base: Settings, *, n_events: int = 100_000, fresh_rate: float = 5_000.0,
                       fresh_seconds: float = 20.0, workers: int = 1, log=print) -> dict[str, float]:
    from producers.simulator import World, WorldConfig
    from stream.benchmark.noop import counter_key
    from stream.faustapp import worker_argv
    from stream.state.keys import Keys
    from stream.state.stats import applied_total, read_stats
    from stream.topics import ensure_topics

    if workers < 1:
        raise ValueError(f"workers is {workers}: the benchmark needs at least one worker process")
    tag = uuid.uuid4().hex[:8]
    s = base.model_copy(update={"app_id": f"bench-{tag}", "redis_prefix": base.run_prefix(f"bench:{tag}"),
                                "datadir": str(base.cache_path / "bench" / tag)})
    # each phase on topics of its own: its processes join their group before any event is there
    s_noop = s.model_copy(update={"topic_prefix": f"bench{tag}a.", "log_level": "warn"})
    s_work = s.model_copy(update={"topic_prefix": f"bench{tag}b."})
    client = s.redis_client()
    keys = Keys(s.redis_prefix)
    world = World(WorldConfig(n_users=10_000, n_items=2_000, seed=1))
    log(f"pipeline benchmark {tag}: {n_events:,} events, {s.partitions} partitions per topic, "
        f"{workers} process(es) per phase")
    results: dict[str, float] = {"events": float(n_events), "workers": float(workers)}
    logs = Path(s.datadir)
    logs.mkdir(parents=True, exist_ok=True)
    log(f"  logs in {logs}")
    started = time.monotonic()
    events = encoded(world.generate(n_events, run_id=f"bench{tag}", start_ts=time.time()))
    log(f"  generated {n_events:,} events in {time.monotonic() - started:.1f} s")
    n_fresh = int(fresh_rate * fresh_seconds)
    fresh_events = iter(world.generate(None, run_id=f"fresh{tag}"))
    fresh_noop, fresh_work = encoded(islice(fresh_events, n_fresh)), encoded(islice(fresh_events, n_fresh))
    try:
        # (a) the no-op agents
        ensure_topics(s_noop, quiet=True)
        noop_key = counter_key(s.redis_prefix)
        noops = start_members(s_noop, "noop", workers, lambda ms: worker_argv(ms, "stream.benchmark.noop"), logs)
        try:
            wait_group_spread(s_noop, f"{s.app_id}-noop", noops)
            t0, t1 = drain_timed(s_noop, events, lambda: int(client.get(noop_key) or 0), log, "(a) no-op drain",
                                  noops, results, "noop_events_per_s")
            by_worker = {k.decode(): int(v) for k, v in client.hgetall(f"{noop_key}:by-worker").items()}
            _rates(results, "noop_events_per_s", [by_worker.get(m.settings.worker_id, 0) for m in noops],
                   n_events, t1 - t0)
            log(f"  (a) no-op agent: {results['noop_events_per_s']:,.0f} events/s{_shares(results, 'noop_events_per_s')}"
                f"{_steady(results, 'noop_events_per_s')}")
            _noop_busy(results, client, noop_key, log)
            # (a') the same fixed rate as (c), through the agent that does nothing
            client.delete(f"{noop_key}:age")
            results["noop_fresh_rate_achieved"] = produce_at(s_noop, fresh_noop, fresh_rate)
            time_until(lambda: int(client.get(noop_key) or 0), n_events + n_fresh, log, "(a') no-op at a fixed rate",
                        noops)
            ages = _noop_ages(client, noop_key)
            results["noop_freshness_p50_s"] = histogram_quantile(0.5, ages)
            results["noop_freshness_p99_s"] = histogram_quantile(0.99, ages)
            log(f"  (a') no-op agent at {results['noop_fresh_rate_achieved']:,.0f} events/s produced: event age at "
                f"its batch p50 {results['noop_freshness_p50_s'] * 1000:.0f} ms, "
                f"p99 {results['noop_freshness_p99_s'] * 1000:.0f} ms")
        finally:
            stop_members(noops)

        # (b) the real workers on the same events
        ensure_topics(s_work, quiet=True)
        procs = start_members(s_work, "worker", workers, lambda ms: [sys.executable, "-m", "stream.cli", "worker"],
                              logs)
        ports = [m.settings.web_port for m in procs]
        headers = s_work.http_headers()
        rejected = Rejected(ports, headers)

        def applied() -> int:
            # an event the worker dead-letters is handled too (else one would hold the phase for good)
            return applied_total(read_stats(client, keys), with_duplicates=True) + rejected()
        try:
            for m in procs:
                if not wait_worker_ready(m.settings.web_port, 180, m.proc, headers):
                    raise RuntimeError(f"benchmark worker {m.settings.worker_id} did not become ready (log: {m.log})")
            wait_group_spread(s_work, s.app_id, procs)
            batches_before = scrape_all(ports, _DRAIN_SERIES, headers)
            marks_before = time.monotonic(), machine_cpu()
            t0, t1 = drain_timed(s_work, events, applied, log, "(b) full pipeline", procs, results,
                                  "pipeline_events_per_s")
            handled = handled_per_worker(ports, n_events, headers)  # waits for every batch's metrics
            batches_after = scrape_all(ports, _DRAIN_SERIES, headers)
            marks_after = time.monotonic(), machine_cpu()
            _batch_means(results, "drain", batches_before, batches_after)
            _rates(results, "pipeline_events_per_s", handled, n_events, t1 - t0)
            results["ratio_b_over_a"] = results["pipeline_events_per_s"] / results["noop_events_per_s"]
            steady = [results.get(f"{k}_last_three_quarters") for k in ("pipeline_events_per_s", "noop_events_per_s")]
            if None not in steady:
                results["ratio_b_over_a_last_three_quarters"] = steady[0] / steady[1]
            log(f"  (b) full pipeline: {results['pipeline_events_per_s']:,.0f} events/s"
                f"{_shares(results, 'pipeline_events_per_s')} = {results['ratio_b_over_a']:.2f} x the no-op agent"
                f"{_steady(results, 'pipeline_events_per_s')}; "
                f"batches of {results['drain_batch_events_mean']:,.0f} events on average, "
                f"{results['drain_batch_seconds_mean'] * 1000:,.0f} ms each")
            _drain_busy(results, batches_before, batches_after, marks_after[0] - marks_before[0], workers,
                        n_events, machine_idle_share(marks_before[1], marks_after[1]), log)
            results["drain_lists_per_event"] = (batches_after[PUSHED] - batches_before[PUSHED]) / n_events
            log(f"  (b) lists pushed: {results['drain_lists_per_event']:.2f} an event")

            # (c) freshness at a fixed rate, the workers caught up
            before = scrape_buckets(ports, "streamrec_event_to_applied_seconds", headers)
            batch_times_before = scrape_buckets(ports, "streamrec_batch_seconds", headers)
            batches_before = scrape_all(ports, _DRAIN_SERIES, headers)
            started_at = time.monotonic()
            achieved = produce_at(s_work, fresh_work, fresh_rate)
            produced_at = time.monotonic()
            _, done_at = time_until(applied, n_events + n_fresh, log, "(c) freshness phase", procs)
            handled_per_worker(ports, n_events + n_fresh, headers)  # the last batches' metrics too
            after = scrape_buckets(ports, "streamrec_event_to_applied_seconds", headers)
            batch_times = _delta(scrape_buckets(ports, "streamrec_batch_seconds", headers), batch_times_before)
            # what the workers did meanwhile: how big their batches were, how long each took, how
            # long they went on after the last event was produced, how busy their loops were and
            # how many lists they pushed an event
            batches_after = scrape_all(ports, _DRAIN_SERIES, headers)
            _batch_means(results, "fresh", batches_before, batches_after)
            _fresh_busy(results, batches_before, batches_after, time.monotonic() - started_at, workers, n_fresh, log)
            results["fresh_drain_after_produce_s"] = max(0.0, done_at - produced_at)
            delta = _delta(after, before)
            results["fresh_rate_target"] = fresh_rate
            results["fresh_rate_achieved"] = achieved
            results["freshness_p50_s"] = histogram_quantile(0.5, delta)
            results["freshness_p99_s"] = histogram_quantile(0.99, delta)
            log(f"  (c) at {achieved:,.0f} events/s produced: event-to-Redis p50 "
                f"{results['freshness_p50_s'] * 1000:.0f} ms, p99 {results['freshness_p99_s'] * 1000:.0f} ms")
            _fresh_tail(results, delta, batch_times, log)
        finally:
            stop_members(procs)
    finally:
        _cleanup([s_noop, s_work], client)
    return results


def _fresh_busy(results: dict[str, float], before: dict[str, float], after: dict[str, float], seconds: float,
                workers: int, n_events: int, log) -> None:
    """How busy the workers' loops were over (c) (``fresh_loop_busy_share``), their CPU an event
    (``fresh_loop_cpu_us_per_event``) and the lists they pushed an event (``fresh_lists_per_event``):
    set against the drain's, they tell a per-batch cost (small batches at a fixed rate) from pushing."""
    shares = time_shares(before, after, seconds, workers)
    results["fresh_loop_busy_share"] = shares["loop_busy"]
    results["fresh_loop_cpu_us_per_event"] = shares["loop_cpu_seconds"] * 1e6 / n_events
    results["fresh_lists_per_event"] = (after[PUSHED] - before[PUSHED]) / n_events
    log(f"  (c) the workers' event loops were busy {shares['loop_busy']:.0%} of the phase, "
        f"{results['fresh_loop_cpu_us_per_event']:.0f} µs of CPU an event, "
        f"{results['fresh_lists_per_event']:.2f} lists pushed an event")


def _delta(after: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Cumulative buckets counted between two scrapes of the same histogram."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def _over(buckets: list[tuple[float, float]], bound: float) -> float:
    """How many of a histogram's observations are above ``bound`` (one of its bucket bounds)."""
    at = dict(buckets)
    return buckets[-1][1] - at[bound] if buckets else 0.0


def _fresh_tail(results: dict[str, float], ages: list[tuple[float, float]], batch_times: list[tuple[float, float]],
                log) -> None:
    """What made (c)'s tail: the share of events older than 250 ms when applied
    (``fresh_events_over_250ms_share``), and how many of the phase's batches took more than 100 ms
    and more than 250 ms (``fresh_batches_over_100ms``, ``fresh_batches_over_250ms``; p99 from a
    few slow batches, or spread over many, reads differently)."""
    events, batches = (ages[-1][1] if ages else 0.0), (batch_times[-1][1] if batch_times else 0.0)
    results["fresh_events_over_250ms_share"] = _over(ages, 0.25) / events if events else float("nan")
    results["fresh_batches"] = batches
    results["fresh_batches_over_100ms"] = _over(batch_times, 0.1)
    results["fresh_batches_over_250ms"] = _over(batch_times, 0.25)
    log(f"  (c) {results['fresh_events_over_250ms_share']:.1%} of the events were older than 250 ms when applied; "
        f"of {batches:,.0f} batches, {results['fresh_batches_over_100ms']:,.0f} took more than 100 ms and "
        f"{results['fresh_batches_over_250ms']:,.0f} more than 250 ms")


def _steady(results: dict[str, float], name: str) -> str:
    """The phase's rate over its last three quarters of the events, for its log line."""
    rate = results.get(f"{name}_last_three_quarters")
    ratio = results.get("ratio_b_over_a_last_three_quarters") if name == "pipeline_events_per_s" else None
    if rate is None:
        return ""
    return f" ({rate:,.0f} events/s over the last three quarters" + (f", {ratio:.2f} x" if ratio else "") + ")"


def _batch_means(results: dict[str, float], phase: str, before: dict[str, float], after: dict[str, float]) -> None:
    """The workers' mean batch size and time between two scrapes, as ``<phase>_batch_events_mean``
    and ``<phase>_batch_seconds_mean``."""
    batches = {k: v - before[k] for k, v in after.items()}
    n_batches = max(batches["streamrec_batch_events_count"], 1.0)
    results[f"{phase}_batch_events_mean"] = batches["streamrec_batch_events_sum"] / n_batches
    results[f"{phase}_batch_seconds_mean"] = batches["streamrec_batch_seconds_sum"] / n_batches


def _drain_busy(results: dict[str, float], before: dict[str, float], after: dict[str, float], seconds: float,
                workers: int, n_events: int, machine_idle: float | None, log) -> None:
    """Where the workers' time went over (b) (stream/benchmark/busy.py), as ``drain_<part>_share``;
    their loops' CPU an event (``drain_loop_cpu_us_per_event``), and the no-op agents' against it
    (``loop_cpu_ratio_a_over_b``: what (b)/(a) would be if neither loop ever waited)."""
    shares = time_shares(before, after, seconds, workers)
    results.update({f"drain_{k}_share": v for k, v in shares.items() if k != "loop_cpu_seconds"})
    results["drain_loop_cpu_us_per_event"] = shares["loop_cpu_seconds"] * 1e6 / n_events
    noop_cpu = results.get("noop_loop_cpu_us_per_event")
    if noop_cpu:
        results["loop_cpu_ratio_a_over_b"] = noop_cpu / results["drain_loop_cpu_us_per_event"]
    if machine_idle is not None:
        results["drain_machine_idle_share"] = machine_idle
    log(f"  (b) the workers' event loops were busy {shares['loop_busy']:.0%} of the drain: in batches "
        f"{shares['in_batches']:.0%} of the time ({shares['in_batches_waiting']:.0%} waiting for Redis or Kafka), "
        f"between batches busy {shares['between_batches_busy']:.0%} and waiting {shares['between_batches_waiting']:.0%}; "
        f"other threads {shares['other_threads']:.0%} of a core a worker"
        + (f"; the machine {machine_idle:.0%} idle" if machine_idle is not None else ""))
    log(f"  (b) event loop CPU: {results['drain_loop_cpu_us_per_event']:.0f} µs an event"
        + (f" against the no-op agent's {noop_cpu:.0f} µs: (a)/(b) in CPU {results['loop_cpu_ratio_a_over_b']:.2f}"
           if noop_cpu else ""))


def _noop_busy(results: dict[str, float], client, key: str, log) -> None:
    """How busy the no-op agents' loops were over (a), from their first to their latest batch
    (``noop_loop_busy_share``, ``noop_other_threads_share``, ``noop_loop_cpu_us_per_event``: the
    mean over the agents)."""
    first, last = client.hgetall(f"{key}:cpu-first"), client.hgetall(f"{key}:cpu-last")
    shares = [loop_shares(first[w].decode(), last[w].decode()) for w in first if w in last]
    shares = [x for x in shares if x is not None]
    if not shares:
        return
    for part in ("loop_busy", "other_threads"):
        results[f"noop_{part}_share"] = sum(x[part] for x in shares) / len(shares)
    results["noop_loop_cpu_us_per_event"] = sum(x["loop_cpu_us_per_event"] for x in shares) / len(shares)
    log(f"  (a) the no-op agents' event loops were busy {results['noop_loop_busy_share']:.0%} of the drain, "
        f"{results['noop_loop_cpu_us_per_event']:.0f} µs of CPU an event; other threads "
        f"{results['noop_other_threads_share']:.0%} of a core an agent")


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


def _cleanup(phases: list[Settings], client) -> None:
    from stream.topics import drop_topics

    for s in phases:  # waits for the deletions: a request left in flight at exit is never sent
        drop_topics(s)
    for key in client.scan_iter(f"{phases[0].redis_prefix}:*", count=1000):
        client.delete(key)


def main_bench_pipeline(settings: Settings, args) -> int:
    from stream.stack import Stack, StackError

    try:
        Stack(settings).up(log=lambda m: print(f"  {m}", file=sys.stderr))
    except StackError as exc:
        print(f"streamrec bench pipeline: {exc}", file=sys.stderr)
        return 2
    results = run_pipeline_bench(settings, n_events=args.events, fresh_rate=args.rate, fresh_seconds=args.seconds,
                                 workers=getattr(args, "workers", 1),
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(results, indent=2))
    return 0
