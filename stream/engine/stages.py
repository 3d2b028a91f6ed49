"""Where a batch step's time goes: seconds per stage, each stage's own time (``streamrec bench step``).

Stages nest (the push ranks users: ``rank`` inside ``push``); a stage's figure is its own time,
without the stages inside it, so the figures add up to the whole. The engine, the pusher and
the ingest step all time through one :class:`Stages` object; :data:`OFF` does nothing and is the
default, so the worker pays one attribute look-up and an empty context manager per stage.

>>> stages = Stages()
>>> with stages("push"):
...     with stages("rank"):
...         pass
>>> sorted(stages.seconds)
['push', 'rank']
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import Iterator

__all__ = ["Stages", "OFF", "STAGE_NAMES"]

#: The stages in the order a batch goes through them.
STAGE_NAMES = ("validate", "load", "score_trials", "learn", "commit", "owner", "attribute", "rank", "push", "other")


class Stages:
    """Seconds per stage, summed over every batch since :meth:`reset` (each stage's own time)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._inner: list[float] = []  # per open stage: seconds spent in the stages inside it

    def reset(self) -> None:
        self.seconds = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = self._inner.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - inner
            if self._inner:
                self._inner[-1] += elapsed


class _Off:
    """Times nothing."""

    def __call__(self, name: str):
        return nullcontext()


OFF = _Off()
