"""The batch validator alone, in process: µs an event, the fast path against the per-record way.

The records are the step bench's (:mod:`stream.benchmark.step`: the same simulator world, the
same JSON and keys), in batches of STREAMREC_BATCH_SIZE. Each round times every batch three
ways, one after the other: ``json.loads`` of each record's bytes (the reference),
``validate_records`` (the fast path, :mod:`stream.engine.decode`) and ``validate_records(...,
fast=False)`` (:func:`stream.contract.validate_event` per record). The figures are medians over
the rounds; the two validators' results are checked equal first.

Run it with ``python -m stream.benchmark.validate [--events N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

from stream.config import Settings

__all__ = ["ValidateBenchResult", "run_validate_bench"]


@dataclass
class ValidateBenchResult:
    events: int
    batch_size: int
    rounds: int
    fast_us: float  # µs an event, median over the rounds
    per_record_us: float
    json_loads_us: float

    def table(self) -> str:
        return "\n".join([
            f"batch validator, in process: {self.events:,} step-bench events in batches of {self.batch_size}, "
            f"{self.rounds} rounds (medians)", "",
            "| | µs an event | / json.loads |", "|---|---:|---:|",
            f"| validate_records (fast path) | {self.fast_us:.2f} | {self.fast_us / self.json_loads_us:.2f} |",
            f"| validate_records(fast=False) (validate_event per record) | {self.per_record_us:.2f} | "
            f"{self.per_record_us / self.json_loads_us:.2f} |",
            f"| reference: json.loads of the same records | {self.json_loads_us:.2f} | 1.00 |", "",
            f"per record / fast path: {self.per_record_us / self.fast_us:.1f}"])


def _batches(settings: Settings, n_events: int) -> tuple[list, dict[str, str]]:
    from stream.contract import TOPIC_OF
    from producers.simulator import World, WorldConfig
    from stream.benchmark.step import EVENT_TYPES, WORLD, _records

    gen = World(WorldConfig(**WORLD)).generate(n_events, start_ts=1.7e9, step_seconds=0.001, run_id="bench-validate")
    records = _records(settings, list(gen), 0)
    size = settings.batch_size
    topic_types = {settings.topic(t): e for e, t in TOPIC_OF.items() if e in EVENT_TYPES}
    return [records[i:i + size] for i in range(0, len(records), size)], topic_types


def run_validate_bench(settings: Settings, *, events: int = 10_000, rounds: int = 7) -> ValidateBenchResult:
    """Time the three ways over the same batches, ``rounds`` times; medians of µs an event."""
    from stream.engine.validate import validate_records

    if events < 1 or rounds < 1:
        raise ValueError(f"bench validate: need events >= 1 and rounds >= 1 (got {events}, {rounds})")
    batches, topic_types = _batches(settings, events)
    for batch in batches:
        if validate_records(batch, topic_types) != validate_records(batch, topic_types, fast=False):
            raise AssertionError("bench validate: the fast path and the per-record way disagree on the step bench's records")
    ways = {
        "json_loads": lambda batch: [json.loads(rec.value) for rec in batch],
        "fast": lambda batch: validate_records(batch, topic_types),
        "per_record": lambda batch: validate_records(batch, topic_types, fast=False),
    }
    per_round: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        spent = dict.fromkeys(ways, 0.0)
        for batch in batches:
            for name, way in ways.items():
                start = time.perf_counter()
                way(batch)
                spent[name] += time.perf_counter() - start
        for name in ways:
            per_round[name].append(spent[name] * 1e6 / events)
    median = {name: statistics.median(values) for name, values in per_round.items()}
    return ValidateBenchResult(events=events, batch_size=settings.batch_size, rounds=rounds, fast_us=median["fast"],
                               per_record_us=median["per_record"], json_loads_us=median["json_loads"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.benchmark.validate", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    print(run_validate_bench(Settings(), events=args.events, rounds=args.rounds).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
