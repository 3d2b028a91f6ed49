"""The cyclic garbage collector of a worker process, tuned for its allocation pattern.

A batch makes and drops many small containers (events, records, lists and their items'
dicts): with CPython's default first threshold (700 allocations) a worker ran its youngest
collection about every 60 events, and a full collection, which walks every object the imports
made too, every 10,000 events or so. In ``streamrec bench step`` that was 9-12 µs an event of
collection (docs/PERFORMANCE.md). :func:`tune_gc` moves everything alive at start-up (modules,
classes, Faust's objects) out of the collector's sight (``gc.freeze``) and collects the
youngest generation after ``threshold`` allocations. Cycles are still collected, later: a
worker's own garbage is rarely cyclic (reference counting frees the rest at once).

>>> import gc
>>> before = gc.get_threshold()
>>> tune_gc(0) is None and gc.get_threshold() == before  # 0: CPython's defaults, nothing frozen
True
>>> with tuned_gc(50_000):
...     gc.get_threshold()[0], gc.get_freeze_count() > 0
(50000, True)
>>> gc.get_threshold() == before and gc.get_freeze_count() == 0
True
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

__all__ = ["tune_gc", "tuned_gc"]


def tune_gc(threshold: int) -> None:
    """Freeze what is alive now and collect the youngest generation every ``threshold``
    allocations (the older generations' thresholds stay). ``threshold`` 0 changes nothing."""
    if threshold <= 0:
        return
    gc.collect()  # what start-up left as garbage goes now, not frozen with the rest
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


@contextmanager
def tuned_gc(threshold: int) -> Iterator[None]:
    """:func:`tune_gc` for a while (a benchmark inside another process), then as before."""
    before = gc.get_threshold()
    tune_gc(threshold)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
