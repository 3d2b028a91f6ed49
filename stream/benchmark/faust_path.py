"""Faust's own per-message cost, in process, without a broker: ``python -m stream.benchmark.faust_path``.

A Faust app built by the worker's builder (stream/faustapp), with one stream reading four
partitions in batches of 500 within 0.05 s as the agents do (stream/faustapp/take.py: the lean
take or Faust's ``take_events``, by STREAMREC_FAUST_LEAN_TAKE); the consumer's real fetch
loop (``_drain_messages``, Faust's or the lean one), the real ``getmany`` (round-robin over the
partitions, Message objects), the conductor, the stream's buffer, the events and the acks. Only
the fetch itself is replaced: ``_wait_next_records`` returns ready-made records, so aiokafka's
network and decoding are not in the figure (about 3 µs a message, DESIGN.md). Each setting is
taken from STREAMREC_* as usual; ``--loop uvloop`` runs it on uvloop.

``streamrec bench faust`` runs it once per configuration (Faust as released, each setting alone,
all of them, the worker's defaults with and without the lean take: :data:`CONFIGS`), each in a
fresh process, alternating, ``--runs`` rounds, and prints
the median µs a message of each and its ratio to Faust as released measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

__all__ = ["measure", "CONFIGS", "main_bench_faust"]

#: Faust as released: every setting of stream/faustapp off.
_RELEASED = {"STREAMREC_EVENT_LOOP": "aio", "STREAMREC_FAUST_CYTHON": "false", "STREAMREC_FAUST_MONITOR": "full",
             "STREAMREC_FAUST_LEAN_DRAIN": "false", "STREAMREC_FAUST_LEAN_TAKE": "false"}
#: The worker's defaults (stream/config.py).
_DEFAULTS = {"STREAMREC_EVENT_LOOP": "uvloop", "STREAMREC_FAUST_CYTHON": "false", "STREAMREC_FAUST_MONITOR": "full",
             "STREAMREC_FAUST_LEAN_DRAIN": "true", "STREAMREC_FAUST_LEAN_TAKE": "true"}
#: name -> the STREAMREC_* settings of that configuration.
CONFIGS = {
    "released": _RELEASED,
    "cython": {**_RELEASED, "STREAMREC_FAUST_CYTHON": "true"},
    "quiet monitor": {**_RELEASED, "STREAMREC_FAUST_MONITOR": "quiet"},
    "uvloop": {**_RELEASED, "STREAMREC_EVENT_LOOP": "uvloop"},
    "lean drain": {**_RELEASED, "STREAMREC_FAUST_LEAN_DRAIN": "true"},
    "lean take": {**_RELEASED, "STREAMREC_FAUST_LEAN_TAKE": "true"},
    "all": {"STREAMREC_EVENT_LOOP": "uvloop", "STREAMREC_FAUST_CYTHON": "true", "STREAMREC_FAUST_MONITOR": "quiet",
            "STREAMREC_FAUST_LEAN_DRAIN": "true", "STREAMREC_FAUST_LEAN_TAKE": "true"},
    "defaults": _DEFAULTS,
    "defaults, Faust's take_events": {**_DEFAULTS, "STREAMREC_FAUST_LEAN_TAKE": "false"},
}


async def _run(n_messages: int, batch: int, on_batch=None, **overrides) -> dict[str, float]:
    """``n_messages`` over four partitions, read in batches of ``batch``; ``on_batch(events)`` sees
    each batch (the tests' hook), ``overrides`` are Settings fields (else the environment's)."""
    from faust.types import TP

    from stream.config import Settings
    from stream.faustapp import build_app
    from stream.faustapp.take import batches

    s = Settings(kafka_port=1, web_port=1, **overrides)
    app = build_app("faust-path-bench", s)
    topic = app.topic("clicks", partitions=4)
    tps = [TP("clicks", p) for p in range(4)]
    consumer = app.consumer
    per_tp = n_messages // len(tps)
    records = {tp: [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o, timestamp=int(time.time() * 1000),
                                    timestamp_type=0, headers=[], key=b"u%06d" % o, value=b'{"schema": "v1"}',
                                    checksum=None, serialized_key_size=7, serialized_value_size=16)
                    for o in range(per_tp)] for tp in tps}
    served = {"done": False}

    async def next_records(timeout):
        if served["done"]:
            await asyncio.sleep(0.01)
            return {}, set(tps)
        served["done"] = True
        return records, set(tps)

    consumer._wait_next_records = next_records
    consumer.highwater = lambda tp: per_tp
    consumer._commit_every = None  # nothing to commit to
    consumer._set_active_tps(set(tps))
    for tp in tps:
        consumer._acked[tp] = []
    total = per_tp * len(tps)
    seen = 0
    finished = asyncio.Event()

    async def drain_stream():
        nonlocal seen
        async for events in batches(app.stream(topic), batch, 0.05, lean=s.faust_lean_take):
            if on_batch is not None:
                on_batch(events)
            seen += len(events)
            if seen >= total:
                finished.set()

    reader = asyncio.ensure_future(drain_stream())
    await asyncio.sleep(0.05)  # the stream subscribes its channel
    await app.topics._update_indices()
    await app.topics.on_partitions_assigned(set(tps))
    app.flow_control.resume()
    consumer.resume_flow()
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    started = time.perf_counter()
    drainer = asyncio.ensure_future(consumer._drain_messages(fetcher))
    await asyncio.wait_for(finished.wait(), 120)
    elapsed = time.perf_counter() - started
    fetcher._stopped.set()
    for task in (reader, drainer):
        task.cancel()
    await asyncio.gather(reader, drainer, return_exceptions=True)
    return {"messages": float(total), "seconds": elapsed, "us_per_message": elapsed / total * 1e6}


def measure(n_messages: int = 100_000, batch: int = 500, loop: str = "aio") -> dict[str, float]:
    """µs a message through Faust's path (fetch loop to the agent's batch), in this process."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(_run(n_messages, batch))
    return asyncio.run(_run(n_messages, batch))


def main_bench_faust(n_messages: int = 100_000, runs: int = 5, log=print) -> dict[str, dict[str, float]]:
    """Every configuration of :data:`CONFIGS` in its own process, alternating, ``runs`` rounds."""
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for r in range(runs):
        for name, conf in CONFIGS.items():
            env = {**os.environ, **conf}
            out = subprocess.run([sys.executable, "-m", "stream.benchmark.faust_path", "--messages", str(n_messages),
                                  "--loop", conf["STREAMREC_EVENT_LOOP"]], env=env, capture_output=True, text=True,
                                 check=True, timeout=600)
            times[name].append(json.loads(out.stdout.strip().splitlines()[-1])["us_per_message"])
            log(f"  round {r + 1}, {name}: {times[name][-1]:.1f} µs a message")
    released = statistics.median(times["released"])
    results = {name: {"us_per_message_median": statistics.median(t), "us_per_message_min": min(t),
                      "us_per_message_max": max(t), "released_over_this": released / statistics.median(t)}
               for name, t in times.items()}
    for name, r in results.items():
        log(f"{name:>30}: median {r['us_per_message_median']:6.1f} µs a message (min {r['us_per_message_min']:.1f}, "
            f"max {r['us_per_message_max']:.1f}), {r['released_over_this']:.2f}x Faust as released")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.benchmark.faust_path", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--loop", choices=["aio", "uvloop"], default="aio")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.messages, args.batch, args.loop)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
