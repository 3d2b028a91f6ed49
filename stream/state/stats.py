"""Reading the worker's counters in Redis (``{prefix}:stats``), for the demo, benchmarks and tests."""

from __future__ import annotations

from stream.state.keys import Keys

__all__ = ["read_stats", "applied_total"]


def read_stats(client, keys: Keys) -> dict[str, int]:
    """The counters as ``{"events_total:<type>": n, "duplicates_total": n, ...}`` (sync redis-py)."""
    return {k.decode(): int(v) for k, v in client.hgetall(keys.stats).items()}


def applied_total(stats: dict[str, int], *, with_duplicates: bool = False) -> int:
    """Events applied (first seen), optionally plus those dropped as duplicates: every event handled.

    >>> applied_total({"events_total:click": 3, "events_total:dwell": 2, "duplicates_total": 1})
    5
    >>> applied_total({"events_total:click": 3, "duplicates_total": 1}, with_duplicates=True)
    4
    """
    total = sum(v for k, v in stats.items() if k.startswith("events_total:"))
    return total + (stats.get("duplicates_total", 0) if with_duplicates else 0)
