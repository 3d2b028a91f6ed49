"""The lean take (stream/faustapp/take.py): pinned to the Faust it was written for; against Faust's
own take_events, the same events, each once, in order and acknowledged; its time bound counted
from the batch before; what it drops, and how it ends."""

from __future__ import annotations

import asyncio
import logging
import time

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from stream.benchmark import faust_path
from stream.config import Settings
from stream.faustapp import build_app, take
from stream.faustapp.pins import source_digest
from stream.faustapp.take import PINNED_SOURCES, batches, lean_take


# --- the pin ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PINNED_SOURCES))
def test_the_faust_source_the_lean_take_follows_is_unchanged(name):
    # If this fails, Faust (or mode) changed under the shim: read the new source against
    # stream/faustapp/take.py, then move the digest (and the pin) with it.
    assert source_digest(name) == PINNED_SOURCES[name], f"{name} changed since the lean take was written"
    assert take.why_not_applicable() is None


def _stream(app_id: str):
    app = build_app(app_id, Settings(kafka_port=1))
    return app, app.stream(app.topic("clicks", partitions=1))


def test_a_changed_source_or_version_falls_back_to_faust_take_events(monkeypatch, caplog):
    _, stream = _stream("t-take-pin")
    assert batches(stream, 10, 0.05, lean=True).__qualname__ == "lean_take"
    name = "faust.streams:Stream.take_events"
    monkeypatch.setitem(take.PINNED_SOURCES, name, "0" * 64)
    with caplog.at_level(logging.WARNING):
        assert batches(stream, 10, 0.05, lean=True).__qualname__ == "Stream.take_events"
    assert name in caplog.text and "using Faust's own take_events" in caplog.text
    monkeypatch.undo()
    monkeypatch.setattr(faust, "__version__", "0.15.4")
    assert "0.15.4" in take.why_not_applicable()


def test_one_setting_chooses_faust_take_events_and_so_does_a_stream_with_processors():
    _, stream = _stream("t-take-off")
    assert batches(stream, 10, 0.05, lean=False).__qualname__ == "Stream.take_events"
    stream.add_processor(lambda value: value)
    assert "processors" in take.why_not_applicable(stream)
    assert batches(stream, 10, 0.05, lean=True).__qualname__ == "Stream.take_events"


# --- through the consumer's fetch loop, against Faust's own -----------------------------------

def _through_faust(lean: bool, n: int = 4_000, size: int = 300):
    got: list[list[tuple[int, int]]] = []
    events = []

    def on_batch(batch):
        got.append([(ev.message.partition, ev.message.offset) for ev in batch])
        events.extend(batch)

    asyncio.run(faust_path._run(n, size, on_batch, faust_lean_take=lean, event_loop="aio"))
    return got, events


@pytest.mark.parametrize("lean", [True, False])
def test_every_event_reaches_the_agent_once_in_order_and_is_acknowledged(lean):
    got, events = _through_faust(lean)
    flat = [pe for batch in got for pe in batch]
    assert all(1 <= len(batch) <= 300 for batch in got)
    assert sorted(flat) == [(p, o) for p in range(4) for o in range(1_000)]  # each once
    for p in range(4):
        offsets = [o for q, o in flat if q == p]
        assert offsets == sorted(offsets), f"partition {p} out of order"
    # every batch handed out was acknowledged after its body (the last one when the reader ended)
    assert all(ev.message.acked for ev in events)


# --- its rules, on a stream's queue filled by hand ---------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _put(app, stream, offset: int, generation=None) -> ConsumerMessage:
    message = ConsumerMessage("clicks", 0, offset, time.time(), 0, [], b"u", b"{}", None, tp=TP("clicks", 0),
                      generation_id=app.consumer_generation_id if generation is None else generation)
    message.incref()
    stream.channel.queue.force_put_nowait(app.create_event(b"u", b"{}", [], message))
    return message


def _offsets(batch) -> list[int]:
    return [ev.message.offset for ev in batch]


def test_a_batch_goes_when_full_or_once_within_has_passed_since_the_one_before(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(take, "clock", clock)

    async def main():
        app, stream = _stream("t-take-rules")
        app.flow_control.resume()
        for o in range(3):
            _put(app, stream, o)
        it = lean_take(stream, 2, 30.0)
        first = await asyncio.wait_for(it.__anext__(), 5)  # full: goes at once
        clock.now += 31  # the agent's body took longer than within: what queued meanwhile goes at once
        second = await asyncio.wait_for(it.__anext__(), 5)
        _put(app, stream, 3)
        # within has not passed since the second went: the third waits, though an event is there
        third = asyncio.ensure_future(it.__anext__())
        await asyncio.sleep(0.1)
        waited = not third.done()
        clock.now += 31
        _put(app, stream, 4)  # wakes the wait; within has passed: both go
        third = await asyncio.wait_for(third, 5)
        await it.aclose()
        return _offsets(first), _offsets(second), waited, _offsets(third)

    assert asyncio.run(main()) == ([0, 1], [2], True, [3, 4])


def test_events_fetched_before_a_rebalance_are_dropped_untracked_and_the_rest_acknowledged():
    async def main():
        app, stream = _stream("t-take-generation")
        app.flow_control.resume()
        app.topics._acking_topics.add("clicks")
        stale = _put(app, stream, 0, generation=app.consumer_generation_id - 1)
        kept = _put(app, stream, 1)
        it = lean_take(stream, 10, 0.01)
        batch = await asyncio.wait_for(it.__anext__(), 5)
        tracked_during_body = kept in app.consumer._unacked_messages
        await it.aclose()  # the body ended: the batch is acknowledged
        return _offsets(batch), stale.tracked, tracked_during_body, kept.acked

    assert asyncio.run(main()) == ([1], False, True, True)


def test_a_stop_thrown_into_the_channel_ends_it_after_what_it_holds():
    async def main():
        app, stream = _stream("t-take-stop")
        app.flow_control.resume()
        _put(app, stream, 0)
        got = []

        async def agent():
            async for batch in lean_take(stream, 10, 30.0):
                got.append(_offsets(batch))

        task = asyncio.ensure_future(agent())
        await asyncio.sleep(0.05)  # the first batch went at once; it waits for more now
        _put(app, stream, 1)
        await asyncio.sleep(0.05)  # taken: it holds it until 30 s after the first batch
        stream.channel._throw(StopAsyncIteration())  # what Actor.cancel does
        await asyncio.wait_for(task, 5)  # returns: the agent's loop ends
        return got

    assert asyncio.run(main()) == [[0], [1]]


def test_it_refuses_a_batch_size_or_bound_that_would_never_hand_anything_out():
    async def main(max_, within):
        _, stream = _stream("t-take-args")
        await lean_take(stream, max_, within).__anext__()

    for max_, within in ((0, 0.05), (10, 0.0)):
        with pytest.raises(ValueError):
            asyncio.run(main(max_, within))


def test_stopping_the_stream_closes_it_and_acknowledges_the_batch_it_handed_out():
    async def main():
        app, stream = _stream("t-take-stream-stop")
        app.flow_control.resume()
        message = _put(app, stream, 0)
        it = batches(stream, 10, 30.0, lean=True)
        batch = await asyncio.wait_for(it.__anext__(), 5)
        acked_in_body = message.acked
        await stream.stop()  # Stream.on_stop closes the buffering generators it knows...
        acked_by_stop = message.acked  # ... so the batch is acknowledged now, not at a next step
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()
        return _offsets(batch), acked_in_body, acked_by_stop

    assert asyncio.run(main()) == ([0], False, True)
