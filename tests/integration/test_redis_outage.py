"""A Redis of the test's own (append-only, as the stack's) killed with kill -9 under load and
started again 3 s later: the worker waits the outage out, never takes it for a poison event, and
applies every event once (tests.helpers.survives_a_redis_outage). Kafka is the shared test stack's;
the same probe runs on a Redis Cluster in test_redis_cluster.py."""

from __future__ import annotations

import os
import signal

import pytest

from stream.config import Settings
from stream.stack.process import free_port
from stream.stack.redis import RedisService
from tests.helpers import start_or_unavailable, survives_a_redis_outage, wait_for

pytestmark = pytest.mark.integration


def test_redis_killed_and_started_again_mid_stream_loses_nothing(isolated, worker_factory, tmp_path):
    port = free_port()
    service = RedisService(Settings(stack_dir=str(tmp_path), redis_port=port, redis_url=""))
    start_or_unavailable(service, "a redis-server")
    try:
        assert wait_for(service.healthy, 15, "the test's Redis")
        settings = isolated.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0", "redis_port": port})
        survives_a_redis_outage(settings, worker_factory, lambda: os.killpg(service.proc.pid(), signal.SIGKILL),
                                # the same config and append-only file: what it acknowledged is there
                                lambda: (service.start(), wait_for(service.healthy, 15, "the test's Redis, again")))
    finally:
        service.proc.stop()
