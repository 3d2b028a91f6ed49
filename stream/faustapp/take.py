"""The lean take: an agent's micro-batches straight from its stream's queue (STREAMREC_FAUST_LEAN_TAKE).

faust-streaming's ``Stream.take_events(max_, within)`` fills its batch through the stream's own
iterator, run in the background: for every event, a trip through the event loop (``sleep(0)``),
a processor coroutine that appends it to the buffer, and, after the agent's body, one ``ack``
coroutine. On this machine that hand-over costs about as much CPU as the no-op agent spends on an
event in all (docs/PERFORMANCE.md, "The hand-over between batches"). And it waits ``within``
after every batch, even when the agent's body took longer than that and events have queued
meanwhile: at a fixed rate every batch starts ``within`` late.

:func:`lean_take` takes from the same queue, under the same rules, in bulk:

* each event is admitted as Faust's stream iterator admits it (``Stream._c_aiter`` and its
  Cython ``StreamIterator``; ``Stream._py_aiter`` is its pure-Python twin): an event fetched
  before a rebalance (another generation) or while flow control is off is dropped untracked,
  to be read again from the committed offset; a message of an acking topic is tracked as
  unacknowledged; the stream's sensors see it come in;
* a batch is handed out when it holds ``max_`` events, or once ``within`` has passed since the
  previous batch was handed out and it holds at least one. Events that queued while the agent
  worked go at once: a body slower than ``within`` is never followed by a wait;
* after the agent's body, even one that raised, every event of the batch is acknowledged as
  ``Stream.ack`` does it (what ``take_events`` does, so an agent that must not lose a batch
  retries inside its body, stream/agents/retry.py);
* a stop thrown into the channel (``Actor.cancel``) ends it, once what it holds was handed out.

It is a shim over Faust internals, so it holds only where it was read and tested: the release in
:data:`stream.faustapp.pins.PINNED_VERSION` and the sources in :data:`PINNED_SOURCES`.
:func:`batches` chooses: the lean take when the setting is on, the pins hold and the stream is a
plain one (no processors, no join); else Faust's own ``take_events`` (with a warning when the
setting asked for the lean one). tests/unit/test_faustapp_take.py fails when a pin moves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator, Optional

from faust.types import ChannelT, EventT

from stream.faustapp.pins import why_not

__all__ = ["batches", "lean_take", "why_not_applicable", "PINNED_SOURCES"]

log = logging.getLogger(__name__)

#: SHA-256 of the source of each Faust (and mode) function the lean take replaces
#: (``take_events``), follows (how an event is admitted and acknowledged) or relies on (the queue
#: it takes from, and how an actor is told to stop).
PINNED_SOURCES = {
    "faust.streams:Stream.take_events":
        "607d48aead118ba8ea868718a0df87de1c5fcecd10ec542c659b448796728e08",
    "faust.streams:Stream._c_aiter":
        "fa44582a5882e9df5240199eabc475668bcd3c13b1816c45805dc746145b80bf",
    "faust.streams:Stream._py_aiter":
        "3a48ee257a65435b482d51edb74f2993a67867949b1ef89b49fea893769e0614",
    "faust.streams:Stream.ack":
        "32d7171a89b0931d806a87dc81dcba5673dd9702f8a6add8426e0e236b9e8fef",
    "faust.streams:Stream.on_stop":
        "81b327b1578dff1c76da6f64a0ea3a2e9ce936b5896eb98502f61f175186fcdd",
    "faust.streams:Stream._channel_stop_iteration":
        "ff1df01f515725a777f993f2525f7430eac681be1cfdda75c2e2dcfaed055d4e",
    "file:faust/_cython/streams.pyx":
        "0041622f4a251188f53d73e6d51d18d16f0f427512df1e96c043cfdeea4c3250",
    "faust.channels:Channel.__anext__":
        "f69e22c24fc8285239c2e2d607c68637b1d21cc39316451c23f28fde13e6c571",
    "faust.agents.actor:Actor.cancel":
        "27af54ce1443b5dd8dc88406e33514bd590dad9d788c1d8d4da149fb40fe81c8",
    "mode.utils.queues:ThrowableQueue.get":
        "57490d393d4147ff15e7e4c00ea6137aed8ff4bd87b89d7a5a92828cca524324",
    "mode.utils.queues:ThrowableQueue.get_nowait":
        "d42b1be9219a0e6e8adfc6db74a20d001179dedb21b792acbffd8f41fcd17c15",
    "mode.utils.queues:ThrowableQueue.empty":
        "737285dcae32c65374f6eef0facb1da551ebf76d0540f31ddfb6212162fa412b",
    "mode.utils.queues:ThrowableQueue._throw":
        "c231e47644923a4843881459de0aeea3e4d261884987e1920e0ed7978641d8fb",
    "mode.utils.queues:FlowControlQueue.get":
        "c14157e5ee641643e6493311c5ff89b5f97a486ec0384d7679c15fd866c5d26b",
    "mode.utils.queues:FlowControlQueue.get_nowait":
        "57cb9b5c12e7ebd959588f239c7d7ea06caee2e01871ef7f52d94a20b60b27a9",
}

#: The clock a batch's time bound is measured on (a test may move it).
clock = time.monotonic


def why_not_applicable(stream: Any = None) -> Optional[str]:
    """None when the lean take can serve ``stream`` (and the installed Faust is the one it was
    written for), else why not."""
    reason = why_not("the lean take", PINNED_SOURCES)
    if reason is None and stream is not None:
        if stream._processors:
            reason = "the stream has processors"
        elif stream.join_strategy is not None:
            reason = "the stream joins others"
        elif not isinstance(stream.channel, ChannelT) or not getattr(stream.channel, "is_iterator", False):
            reason = "the stream does not read a channel's queue"
    return reason


def batches(stream: Any, max_: int, within: float, *, lean: bool = True) -> AsyncIterator[list]:
    """The agent's micro-batches of events from ``stream``: :func:`lean_take` when ``lean`` and it
    applies, else Faust's own ``stream.take_events(max_, within)``."""
    if lean:
        reason = why_not_applicable(stream)
        if reason is None:
            gen = lean_take(stream, max_, within)
            # as Faust's buffering generators are: Stream.on_stop closes what is left of it
            stream._active_agens.add(gen)
            return gen
        log.warning("STREAMREC_FAUST_LEAN_TAKE is on but %s: using Faust's own take_events", reason)
    return stream.take_events(max_, within=within)


async def lean_take(stream: Any, max_: int, within: float) -> AsyncIterator[list]:
    """Batches of up to ``max_`` events, one at least ``within`` seconds after the one before
    unless full (see the module docstring)."""
    if max_ < 1 or not within > 0:
        raise ValueError(f"lean_take needs max_ >= 1 and within > 0 (got {max_}, {within})")
    app = stream.app
    consumer = app.consumer
    queue = stream.channel.queue
    empty, get_nowait, get = queue.empty, queue.get_nowait, queue.get
    flow_active = app.flow_control.is_active
    acking_topics = app.topics._acking_topics
    add_unacked = consumer._unacked_messages.add
    on_message_in, on_message_out = stream._on_message_in, stream._on_message_out
    on_event_in, on_event_out = stream._on_stream_event_in, stream._on_stream_event_out
    wait_for, TimeoutError_ = asyncio.wait_for, asyncio.TimeoutError

    stream._finalized = True  # as iterating it does: no processors may be added now
    started_here = await stream.maybe_start()
    events: list = []
    handed_out = clock() - within  # the first event need not wait for a batch before it
    ended = False
    try:
        while not ended and not stream.should_stop:
            while len(events) < max_:
                try:
                    if empty():
                        wait = handed_out + within - clock() if events else within
                        if wait <= 0:
                            break
                        value = await wait_for(get(), wait)
                    else:
                        value = get_nowait()
                except TimeoutError_:
                    if events or stream.should_stop:
                        break
                    continue
                except StopAsyncIteration:  # the actor was told to stop reading
                    ended = True
                    break
                if not isinstance(value, EventT):
                    raise TypeError(f"lean_take reads events, the stream's channel held {value!r}")
                message = value.message
                if not flow_active() or message.generation_id != app.consumer_generation_id:
                    continue  # fetched before a rebalance: read again from the committed offset
                tp, offset = message.tp, message.offset
                if message.topic in acking_topics and not message.tracked:
                    message.tracked = True
                    add_unacked(message)
                    on_message_in(tp, offset, message)
                on_event_in(tp, offset, stream, value)
                events.append(value)
            if not events:
                continue
            batch, events = events, []
            handed_out = clock()
            stream.events_total += len(batch)
            try:
                yield batch
            finally:
                for event in batch:  # Stream.ack, for each
                    last = event.ack()
                    message = event.message
                    on_event_out(message.tp, message.offset, stream, event)
                    if last:
                        on_message_out(message.tp, message.offset, message)
    finally:
        stream._channel_stop_iteration(stream.channel)
        if started_here:
            await stream.stop()
            stream.service_reset()
