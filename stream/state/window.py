"""The time buckets of a dedupe window: ids applied are remembered for a bounded time.

Both sides keep ids (the user side: tokens of event ids, producer resends; the item owners:
item update ids, outbox resends) in sets of one half-window each. A commit adds to the set of
the current half-window; a look-up reads it and the two before it, so an id is remembered for
at least the window and at most 1.5 windows (plus the expiry's margin), and the memory is the
ids of the last 1.5 windows, whatever the rate.

>>> window_buckets(1004.9, 10), window_buckets(1014.0, 10)
([200, 199, 198], [202, 201, 200])
>>> bucket_expiry(10)
75
"""

from __future__ import annotations

__all__ = ["window_buckets", "bucket_expiry"]


def window_buckets(now: float, window_seconds: int) -> list[int]:
    """The buckets at ``now`` (seconds): the current half-window's (written), then the two before
    it (read too)."""
    half = max(1, int(window_seconds) // 2)
    b = int(now // half)
    return [b, b - 1, b - 2]


def bucket_expiry(window_seconds: int) -> int:
    """Seconds a bucket's set lives after its last write: while it is one of the last three
    half-windows, plus a minute."""
    return 3 * max(1, int(window_seconds) // 2) + 60
