"""The lean drain (stream/faustapp/drain.py): pinned to the Faust it was written for, and the
same deliveries, read offsets, gaps and commits as Faust's own loop on the same messages."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import faust
import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import Transport as FaustTransport
from faust.types import TP

from stream.config import Settings
from stream.faustapp import build_app
from stream.faustapp import drain
from stream.faustapp.drain import PINNED_SOURCES, PINNED_VERSION, LeanTransport, Rest, run_now, source_digest

ROOT = Path(__file__).resolve().parents[2]


# --- the pin ---------------------------------------------------------------------------------

def test_pyproject_pins_the_faust_release_the_shim_was_written_for():
    pins = re.findall(r'"faust-streaming==([^";]+)"', (ROOT / "pyproject.toml").read_text())
    assert pins == [PINNED_VERSION], pins
    assert faust.__version__ == PINNED_VERSION


@pytest.mark.parametrize("name", sorted(PINNED_SOURCES))
def test_the_faust_source_the_shim_replaces_or_relies_on_is_unchanged(name):
    # If this fails, Faust changed under the shim: read the new source against
    # stream/faustapp/drain.py, then move the digest (and the pin) with it.
    assert source_digest(name) == PINNED_SOURCES[name], f"{name} changed since the lean drain was written"
    assert drain.why_not_applicable() is None


def test_a_changed_source_or_version_turns_the_shim_off(monkeypatch, caplog):
    name = "faust.transport.consumer:Consumer._drain_messages"
    monkeypatch.setitem(drain.PINNED_SOURCES, name, "0" * 64)
    assert name in drain.why_not_applicable()
    with caplog.at_level(logging.WARNING):
        assert type(build_app("t-pin", Settings(kafka_port=1)).transport) is FaustTransport
    assert "using Faust's own fetch loop" in caplog.text
    monkeypatch.undo()
    monkeypatch.setattr(faust, "__version__", "0.15.4")
    assert "0.15.4" in drain.why_not_applicable()


def test_one_setting_chooses_the_lean_or_faust_own_consumer():
    assert type(build_app("t-on", Settings(kafka_port=1)).transport) is LeanTransport
    off = build_app("t-off", Settings(kafka_port=1, faust_lean_drain=False))
    assert type(off.transport) is FaustTransport
    assert off.transport.Consumer._drain_messages is FaustConsumer._drain_messages


# --- stepping a coroutine by hand ---------------------------------------------------------------

def test_run_now_finishes_a_coroutine_that_needs_no_waiting():
    async def ready():
        return "done"

    assert run_now(ready()) == (True, "done")


def test_run_now_raises_what_the_coroutine_raises_in_its_first_step():
    async def bad():
        raise ValueError("decode failed")

    with pytest.raises(ValueError, match="decode failed"):
        run_now(bad())


def test_the_rest_of_a_waiting_coroutine_runs_in_a_task_to_its_end():
    async def main():
        gate = asyncio.Event()
        steps = []

        async def waits():
            steps.append("first")
            await gate.wait()
            steps.append("after the gate")
            return 7

        done, rest = run_now(waits())
        assert not done and isinstance(rest, Rest) and steps == ["first"]
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0.01)
        assert not task.done()
        gate.set()
        return await task, steps

    assert asyncio.run(main()) == (7, ["first", "after the gate"])


def test_cancelling_the_rest_cancels_the_coroutine_where_it_waits():
    async def main():
        cleaned = []

        async def waits_forever():
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append("finally ran")

        done, rest = run_now(waits_forever())
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return cleaned

    assert asyncio.run(main()) == ["finally ran"]


def test_an_error_after_waiting_reaches_the_awaiter():
    async def main():
        async def fails_later():
            await asyncio.sleep(0)
            raise KeyError("late")

        _, rest = run_now(fails_later())
        await rest

    with pytest.raises(KeyError, match="late"):
        asyncio.run(main())


# --- the loop against Faust's own, on the same messages -----------------------------------------

def _drain_once(drain_fn, lean: bool):
    """Run ``drain_fn`` over a scripted fetch and report what happened.

    The script: two partitions; a gap of offsets (compaction) on one; a message older than the one
    read before (dropped); a delivery that has to wait until a buffer frees (delivered); a delivery
    that waits while the flow is suspended for a rebalance (given up); enough acks to commit."""

    async def main():
        app = build_app(f"t-drain-{lean}", Settings(kafka_port=1, faust_lean_drain=lean))
        c = app.consumer
        a, b = TP("clicks", 0), TP("dwell", 1)
        script = [(a, 0), (a, 1), (b, 5), (a, 4), (b, 6), (a, 3), (a, 5), (b, 7), (a, 6), (b, 8), (a, 7)]
        msgs = [SimpleNamespace(tp=tp, topic=tp.topic, partition=tp.partition, offset=o, key=b"u", value=b"{}")
                for tp, o in script]
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        delivered, gaps, commits = [], [], []
        buffer_freed, never = asyncio.Event(), asyncio.Event()

        async def deliver(message):
            if (message.tp, message.offset) == (b, 7):  # a full buffer, freed a moment later
                await buffer_freed.wait()
            if (message.tp, message.offset) == (a, 6):  # flow control while a rebalance starts
                await never.wait()
            delivered.append((message.topic, message.offset))
            c._n_acked += 1

        async def getmany(timeout):
            for m in msgs:
                yield m.tp, m
            fetcher._stopped.set()

        async def add_gap(tp, start, end):
            gaps.append((tp.topic, start, end))

        async def commit(*args, **kwargs):
            commits.append(len(delivered))
            return True

        async def helpers():
            await asyncio.sleep(0.02)
            buffer_freed.set()
            await asyncio.sleep(0.02)
            c.stop_flow()  # the rebalance: the waiting delivery of (a, 6) is given up
            await asyncio.sleep(0.02)
            c.resume_flow()

        c.callback, c.getmany, c._add_gap, c.commit = deliver, getmany, add_gap, commit
        c._commit_every = 4
        app.topics.acks_enabled_for = lambda topic: True
        side = asyncio.ensure_future(helpers())
        await asyncio.wait_for(drain_fn(c, fetcher), 10)  # a delivery that is never given up hangs here
        await side
        return delivered, gaps, commits, {tp.topic: o for tp, o in c._read_offset.items()}

    return asyncio.run(main())


def test_the_lean_loop_delivers_reads_gaps_and_commits_as_faust_does():
    faust_own = _drain_once(FaustConsumer._drain_messages, lean=False)
    lean = _drain_once(drain.LeanConsumer._drain_messages, lean=True)
    assert lean == faust_own
    delivered, gaps, commits, read = lean
    # what Faust's own loop does, spelled out: (a, 3) is older than the 4 read before it and is
    # dropped, (b, 7) waited and was delivered, (a, 6) was given up when the flow stopped (its
    # partition is read again from the committed offset after the rebalance)
    assert delivered == [("clicks", 0), ("clicks", 1), ("dwell", 5), ("clicks", 4), ("dwell", 6), ("clicks", 5),
                         ("dwell", 7), ("dwell", 8), ("clicks", 7)]
    assert gaps == [("clicks", 2, 4)]
    assert commits == [4, 8]
    assert read == {"clicks": 7, "dwell": 8}
