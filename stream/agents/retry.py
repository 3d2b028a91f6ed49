"""Retrying an agent's step until it succeeds: Faust's ``take_events`` acks a batch after the
loop body even if it raised, so a body that gave up would drop the batch."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

__all__ = ["until_done", "BACKOFF"]

log = logging.getLogger(__name__)

#: Seconds between attempts: growing, then every 10 s.
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)


async def until_done(what: str, step: Callable[[], Awaitable[Any]], backoff: tuple[float, ...] = BACKOFF) -> Any:
    """Await ``step()`` until it returns; log each failure with ``what`` and wait a little longer.

    >>> calls = []
    >>> async def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionError("not yet")
    ...     return "done"
    >>> asyncio.run(until_done("a flaky step", flaky, backoff=(0.0,))), len(calls)
    ('done', 3)
    """
    attempt = 0
    while True:
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = backoff[min(attempt, len(backoff) - 1)]
            attempt += 1
            log.exception("%s failed (attempt %d); retrying in %.1f s", what, attempt, delay)
            await asyncio.sleep(delay)
