"""`streamrec stack up|down|status`: the local Kafka, Redis and Prometheus as processes (and, asked
for by name, a local Redis Cluster: :mod:`stream.stack.redis_cluster`)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from stream.config import Settings
from stream.stack.kafka import KafkaService
from stream.stack.process import StackError, port_open
from stream.stack.prometheus import PrometheusService
from stream.stack.redis import RedisService
from stream.stack.redis_cluster import RedisClusterService

__all__ = ["Stack", "ServiceStatus"]

_START_TIMEOUT = {"kafka": 90.0, "redis": 15.0, "prometheus": 30.0, "redis-cluster": 30.0}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    port: int
    pid: int | None
    healthy: bool

    def line(self) -> str:
        state = "healthy" if self.healthy else ("starting/unhealthy" if self.pid else "stopped")
        pid = f"pid {self.pid}" if self.pid else "no process"
        return f"{self.name:<11} {state:<18} port {self.port:<6} {pid}"


class Stack:
    """The local services, in start order."""

    def __init__(self, settings: Settings, services: tuple[str, ...] = ("kafka", "redis", "prometheus")):
        all_services = {
            "kafka": KafkaService(settings),
            "redis": RedisService(settings),
            "prometheus": PrometheusService(settings),
            "redis-cluster": RedisClusterService(settings),
        }
        unknown = set(services) - set(all_services)
        if unknown:
            raise StackError(f"unknown service(s) {sorted(unknown)}: choose from {sorted(all_services)}")
        self.settings = settings
        self.services = [all_services[name] for name in services]

    def status(self) -> list[ServiceStatus]:
        return [ServiceStatus(s.name, s.port, s.proc.pid(), s.healthy()) for s in self.services]

    def up(self, log=print) -> None:
        """Start what is not running and wait until every service answers. A second call is a no-op."""
        for service in self.services:
            if service.proc.running():
                if self._wait_healthy(service, _START_TIMEOUT[service.name]):
                    log(f"{service.name}: already running (pid {service.proc.pid()}, port {service.port})")
                    continue
                raise StackError(
                    f"{service.name} runs (pid {service.proc.pid()}) but does not answer on port {service.port}; "
                    f"try `streamrec stack down`. Log tail:\n{service.proc.log_tail()}"
                )
            if port_open(service.port):
                raise StackError(
                    f"{service.name}: port {service.port} is already in use by a process this stack did not start; "
                    f"stop it or choose another port (STREAMREC_{service.port_setting.upper()})."
                )
            log(f"{service.name}: starting on port {service.port} (logs: {service.proc.logfile})")
            started = time.monotonic()
            service.start()
            if not self._wait_healthy(service, _START_TIMEOUT[service.name]):
                tail = service.proc.log_tail()
                service.proc.stop()
                raise StackError(f"{service.name} did not become healthy within {_START_TIMEOUT[service.name]:.0f} s. Log tail:\n{tail}")
            log(f"{service.name}: healthy after {time.monotonic() - started:.1f} s (pid {service.proc.pid()})")

    def down(self, log=print) -> None:
        for service in reversed(self.services):
            if service.proc.stop():
                log(f"{service.name}: stopped")
            else:
                log(f"{service.name}: was not running")

    @staticmethod
    def _wait_healthy(service, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.healthy():
                return True
            if not service.proc.running():
                return False
            time.sleep(0.3)
        return False


def main_stack(settings: Settings, action: str, services: tuple[str, ...]) -> int:
    stack = Stack(settings, services)
    try:
        if action == "up":
            stack.up()
        elif action == "down":
            stack.down()
        else:
            rows = stack.status()
            for row in rows:
                print(row.line())
            return 0 if all(r.healthy for r in rows) else 1
    except StackError as exc:
        print(f"streamrec stack {action}: {exc}", file=sys.stderr)
        return 2
    return 0
