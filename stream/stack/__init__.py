"""Local services for development, tests and the demo: Kafka (Maven jars), Redis, Prometheus."""

from stream.stack.manager import ServiceStatus, Stack
from stream.stack.process import StackError

__all__ = ["Stack", "ServiceStatus", "StackError"]
