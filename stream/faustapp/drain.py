"""The lean drain: Faust's fetch loop without four tasks per message (STREAMREC_FAUST_LEAN_DRAIN).

faust-streaming's ``Consumer._drain_messages`` hands every fetched message to the conductor
(which puts it in the buffers of the streams that read its partition) through mode's
``Service.wait_first(callback(message), suspend_flow.wait())``: four tasks created and three
cancelled a message, 50-80 µs of the ~115 µs Faust spends per message here (faust-streaming
PR #223; docs/PERFORMANCE.md, "Faust's own path"). The race is there for one case: a delivery
that has to *wait* (a stream's buffer full, flow control suspended for a rebalance) must give up
when the consumer's flow is suspended, so a rebalance never waits behind it.

:class:`LeanConsumer` keeps Faust's loop and that rule, and changes only how a message is
handed over: the delivery coroutine is first stepped by hand (:func:`run_now`). Almost always it
finishes in that one step (the buffer has room, flow is on): then it is done, with no task and
no trip through the event loop. If it has to wait, what is left of it (:class:`Rest`) goes
through Faust's own ``wait_first`` race exactly as before. In asyncio a coroutine's first step
runs the same whether a Task or this module drives it, so what reaches the streams, in what
order, and which offsets are read, acknowledged and committed are Faust's.

It is a shim over a Faust internal, so it holds only where it was read and tested:
:data:`PINNED_VERSION` is the version pyproject.toml pins, and :data:`PINNED_SOURCES` the
SHA-256 of the source of every Faust function it replaces or relies on.
:func:`why_not_applicable` checks both at start; the worker falls back to Faust's own path (with
a warning) when either differs, and tests/unit/test_faustapp_drain.py fails.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine, Generator, Optional

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

from stream.faustapp.pins import PINNED_VERSION, source_digest, why_not

__all__ = ["LeanConsumer", "LeanTransport", "run_now", "Rest", "why_not_applicable", "source_digest",
           "PINNED_VERSION", "PINNED_SOURCES"]

log = logging.getLogger(__name__)

#: SHA-256 of ``inspect.getsource`` of each Faust function the shim replaces (the drain loop)
#: or relies on (the fetcher that runs it, the hook that builds the transport, the race used when a
#: delivery must wait).
PINNED_SOURCES = {
    "faust.transport.consumer:Consumer._drain_messages":
        "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
    "faust.transport.consumer:Fetcher._fetcher":
        "68f894f0b577d8100419d6288088177609415aec9fc0ae82aec70b961a2e59b1",
    "faust.app.base:App._new_transport":
        "42db531312dd776fc3937154a32f19eeb9ad7d4ebc2722a92d081a2d271baea1",
    "mode.services:Service.wait_first":
        "feade6a31f8a67897cf687c54c66f5f4535288050bbaac07249ce2063d36ae2e",
}

#: Messages handed over between two yields to the event loop (Faust's loop uses the same).
YIELD_EVERY = 100


def why_not_applicable() -> Optional[str]:
    """None when the installed Faust is the one the shim was written for, else why not."""
    return why_not("the lean drain", PINNED_SOURCES)


def run_now(coro: Coroutine) -> tuple[bool, Any]:
    """Step ``coro`` once by hand: ``(True, its result)`` if it finished without waiting, else
    ``(False, Rest)``, an awaitable of the rest of it. An exception it raises propagates.

    >>> async def ready():
    ...     return 42
    >>> run_now(ready())
    (True, 42)
    >>> async def waits():
    ...     await asyncio.sleep(0)
    ...     return 43
    >>> done, rest = run_now(waits())
    >>> done, asyncio.run(rest.finish())
    (False, 43)
    """
    try:
        pending = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, Rest(coro, pending)


class Rest:
    """What is left of a coroutine that :func:`run_now` stepped and that yielded ``pending``.

    Awaiting it (or wrapping it in a Task, which ``wait_first`` does) drives the coroutine on
    from there, exactly as ``yield from`` would: values the coroutine yields go to the task, and
    what the task sends or throws (a cancellation) goes back into the coroutine.
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine, pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._pending
        self._pending = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: B036 - a cancellation must reach the coroutine too
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value

    async def finish(self) -> Any:
        """Await the rest (a coroutine, for ``asyncio.run``)."""
        return await self


class LeanConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop hands messages over without a task each."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by the worker's Fetcher
        # Faust's loop (Fetcher._fetcher runs it until the consumer or the fetcher stops), with
        # each delivery first run by hand; see the module docstring.
        deliver = self.callback
        read_offsets = self._read_offset  # a defaultdict: None for a partition not read yet
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        diag = self.diag
        since_yield = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                diag.set_flag(CONSUMER_FETCHING)
                fetched = self.getmany(timeout=1.0)
                await self.sleep(0)  # getmany may return at once, again and again: let others run
                if self.should_stop:
                    diag.unset_flag(CONSUMER_FETCHING)
                    continue
                async for tp, message in fetched:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    last = read_offsets[tp]
                    if last is not None and offset < last:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                        continue
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)  # offsets missing in between (compaction)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    finished, rest = run_now(deliver(message))
                    if not finished:
                        # it has to wait: race it against a suspended flow, as Faust does
                        await self.wait_first(rest, self.suspend_flow.wait())
                    read_offsets[tp] = offset
                diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            diag.unset_flag(CONSUMER_FETCHING)


class LeanTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`LeanConsumer`."""

    Consumer = LeanConsumer
