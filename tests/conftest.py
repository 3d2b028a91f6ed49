"""Fixtures. Integration tests run against a real Kafka, Redis and Prometheus, started by the
project's own stack code on test ports (STREAMREC_TEST_* to change them). Under CI=true a
service that cannot start is an error; elsewhere those tests are skipped with the reason.
Under CI=true every skip, from any source, is reported as a failure (the hook below)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from stream.config import Settings, default_cache_dir
from stream.stack.process import stop_child, wait_worker_ready
from tests.helpers import drop_topics, free_port, in_ci, unavailable

ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test is a failed test: a missing service or tool must show red."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


def _stack_settings() -> Settings:
    return Settings(
        kafka_port=int(os.environ.get("STREAMREC_TEST_KAFKA_PORT", "19092")),
        kafka_controller_port=int(os.environ.get("STREAMREC_TEST_KAFKA_CONTROLLER_PORT", "19093")),
        redis_port=int(os.environ.get("STREAMREC_TEST_REDIS_PORT", "16379")),
        prometheus_port=int(os.environ.get("STREAMREC_TEST_PROMETHEUS_PORT", "19090")),
        stack_dir=str(default_cache_dir() / "test-stack"),
        # Nothing listens there: the test Prometheus scrapes only the workers tests register.
        prometheus_targets="127.0.0.1:1",
        bootstrap_servers="",
        redis_url="",
        partitions=4,
    )


def _up_for_the_session(settings: Settings, services: tuple[str, ...], what: str):
    """Start ``services`` (a generator fixture's body): up for the whole session, stopped at the
    end if this session started them (and STREAMREC_TEST_KEEP_STACK is not set)."""
    from stream.stack import Stack, StackError

    stack = Stack(settings, services)
    already = all(s.healthy for s in stack.status())
    try:
        stack.up(log=lambda m: print(f"[stack] {m}", file=sys.stderr))
    except StackError as exc:
        unavailable(f"{what} could not start: {exc}")
    yield settings
    if not already and not os.environ.get("STREAMREC_TEST_KEEP_STACK"):
        stack.down(log=lambda m: print(f"[stack] {m}", file=sys.stderr))


@pytest.fixture(scope="session")
def stack_settings():
    """The test stack, up for the whole session; stopped at the end if this session started it."""
    yield from _up_for_the_session(_stack_settings(), ("kafka", "redis", "prometheus"),
                                   "the local stack (Kafka, Redis, Prometheus)")


@pytest.fixture
def isolated(stack_settings, request):
    """Settings with this test's own topics, consumer group, Redis prefix and web port."""
    from stream.topics import ensure_topics

    tag = uuid.uuid4().hex[:10]
    settings = stack_settings.model_copy(update={
        "app_id": f"test-{tag}",
        "topic_prefix": f"t{tag}.",
        "redis_prefix": f"test:{tag}",
        "web_port": free_port(),
        "rec_min_interval_seconds": 0.0,
        "batch_within_seconds": 0.1,
        "datadir": str(Path(request.config.cache.mkdir("streamrec-workers")) / tag),
    })
    ensure_topics(settings, quiet=True)
    yield settings
    drop_topics(settings)  # a kept test stack would otherwise gather thousands of partitions
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(f"{settings.redis_prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])


@pytest.fixture(scope="session")
def redis_cluster_settings(stack_settings):
    """The test stack with its Redis swapped for a local Redis Cluster of three primaries
    (stream/stack/redis_cluster.py, on STREAMREC_TEST_REDIS_CLUSTER_PORT and the two ports after
    it), up for the session; stopped at the end if this session started it."""
    port = int(os.environ.get("STREAMREC_TEST_REDIS_CLUSTER_PORT", "17000"))
    settings = stack_settings.model_copy(update={"redis_cluster_port": port, "redis_cluster": True,
                                                 "redis_url": f"redis://127.0.0.1:{port}/0"})
    yield from _up_for_the_session(settings, ("redis-cluster",), "the local Redis Cluster")


@pytest.fixture
def isolated_cluster(isolated, redis_cluster_settings):
    """``isolated`` on the Redis Cluster: its Redis prefix a hash tag (every key in one slot)."""
    cluster = redis_cluster_settings
    settings = isolated.model_copy(update={
        "redis_cluster": True, "redis_cluster_port": cluster.redis_cluster_port, "redis_url": cluster.redis_url,
        "redis_prefix": "{" + isolated.redis_prefix + "}"})
    yield settings
    client = settings.redis_client()
    keys = list(client.scan_iter(f"{settings.redis_prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    client.close()


class WorkerProcess:
    """A real `streamrec worker` subprocess."""

    def __init__(self, settings: Settings, log_path: Path):
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> "WorkerProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], stdout=log,
                                     stderr=subprocess.STDOUT, env=self.settings.as_env(), cwd=ROOT)
        if not wait_worker_ready(self.settings.web_port, timeout, self.proc, self.settings.http_headers()):
            self.stop()
            raise AssertionError(f"worker did not become ready; log tail:\n{self.log_tail()}")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        return None if self.proc is None else stop_child(self.proc, sig, timeout)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"


@pytest.fixture
def worker_factory(tmp_path):
    started: list[WorkerProcess] = []

    def make(settings: Settings, name: str = "worker") -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"{name}-{len(started)}.log")
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()
