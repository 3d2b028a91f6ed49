"""The one Faust app builder (stream/faustapp/app.py) and the quiet Monitor."""

from __future__ import annotations

import importlib

import pytest
from faust.sensors import Monitor
from faust.types import TP

from stream.config import Settings
from stream.faustapp import build_app, faust_settings, worker_argv
from stream.faustapp.monitor import QuietMonitor


def test_the_no_op_app_runs_with_every_faust_setting_of_the_worker(monkeypatch):
    monkeypatch.setenv("STREAMREC_WORKER_ID", "w-7")
    monkeypatch.setenv("STREAMREC_CONSUMER_FETCH_BYTES", "32768")
    monkeypatch.setenv("STREAMREC_FAUST_MONITOR", "quiet")
    from stream import config

    config.get_settings.cache_clear()
    try:
        worker = importlib.reload(importlib.import_module("stream.app")).app
        noop = importlib.reload(importlib.import_module("stream.benchmark.noop")).app
    finally:
        config.get_settings.cache_clear()
    assert noop.conf.id != worker.conf.id  # its own consumer group
    for name in faust_settings(Settings()):
        assert getattr(noop.conf, name) == getattr(worker.conf, name), name
    assert worker.conf.consumer_group_instance_id == "w-7" and worker.conf.consumer_max_fetch_size == 32768
    assert type(noop.transport) is type(worker.transport)


def test_each_setting_reaches_faust():
    on = build_app("t-on", Settings(kafka_port=1, faust_cython=True, faust_monitor="quiet"))
    assert on.conf.cython_optimizations is True and type(on.monitor) is QuietMonitor
    off = build_app("t-off", Settings(kafka_port=1, faust_cython=False, faust_monitor="full"))
    assert off.conf.cython_optimizations is False and type(off.monitor) is Monitor
    default = Settings(kafka_port=1)  # what was measured to pay: uvloop and the lean drain
    assert (default.event_loop, default.faust_lean_drain, default.faust_cython, default.faust_monitor) == (
        "uvloop", True, False, "full")


@pytest.mark.parametrize("loop", ["aio", "uvloop"])
def test_the_worker_command_line_names_the_event_loop(loop):
    argv = worker_argv(Settings(event_loop=loop, web_port=6123, datadir="/tmp/x"), "stream.app")
    assert argv[argv.index("--loop") + 1] == loop
    assert argv.index("--loop") < argv.index("worker")  # an option of faust, not of its worker command
    assert argv[argv.index("--web-port") + 1] == "6123" and argv[argv.index("--datadir") + 1] == "/tmp/x"


def test_uvloop_is_installed_for_the_default_loop():
    import uvloop  # STREAMREC_EVENT_LOOP=uvloop is the default: it must be installed

    assert Settings().event_loop == "uvloop" and callable(uvloop.new_event_loop)


def test_the_quiet_monitor_does_no_per_event_bookkeeping_but_keeps_the_stall_clock():
    m, full = QuietMonitor(), Monitor()
    tp = TP("clicks", 3)
    stream = _Stream()
    for monitor in (m, full):
        monitor.track_tp_end_offset(tp, 100)
        monitor.on_message_in(tp, 7, _Message())
        state = monitor.on_stream_event_in(tp, 7, stream, object())
        monitor.on_stream_event_out(tp, 7, stream, object(), state)
        monitor.on_message_out(tp, 7, _Message())
    assert (full.messages_received_total, full.events_total, len(full.events_runtime)) == (1, 1, 1)
    assert (m.messages_received_total, m.events_total, len(m.events_runtime)) == (0, 0, 0)
    assert not m.tp_end_offsets and not m.tp_read_offsets and not m.events_by_stream
    # Faust's aiokafka driver warns about a stalled stream from this clock: it must keep ticking
    assert tp in m.stream_inbound_time


class _Message:
    time_in = None


class _Owner:
    pass


class _Stream:
    def __init__(self):
        self.task_owner = _Owner()


@pytest.mark.parametrize("lean", [True, False])
def test_the_in_process_faust_bench_takes_every_message_through_a_stream_at_toy_size(monkeypatch, lean):
    from stream.benchmark.faust_path import measure

    monkeypatch.setenv("STREAMREC_FAUST_LEAN_DRAIN", str(lean).lower())
    result = measure(n_messages=2_000, batch=100)
    assert result["messages"] == 2_000 and result["us_per_message"] > 0
