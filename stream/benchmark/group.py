"""N Faust processes in one consumer group for the pipeline benchmark: each with its own web
port, datadir and static membership id (DESIGN.md's Faust notes), started together, and a wait
until the group has spread the event topics' partitions over all of them."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from stream.config import Settings
from stream.contract import INTERACTION_TOPICS
from stream.stack.process import free_port, stop_child

__all__ = ["Member", "start_members", "stop_members", "wait_group_spread", "EVENT_TOPICS"]

#: The logical topics the no-op agent and the ingest agent read.
EVENT_TOPICS = INTERACTION_TOPICS  # what the ingest agent reads


@dataclass
class Member:
    """One process of the group and the settings it was started with."""

    settings: Settings
    proc: subprocess.Popen
    log: Path


def member_settings(s: Settings, role: str, i: int) -> Settings:
    """The settings of process ``i`` of ``role``: its own web port, datadir and membership id.

    >>> m = member_settings(Settings(datadir="/tmp/b"), "noop", 1)
    >>> m.worker_id, m.datadir, m.web_port != Settings().web_port
    ('noop-1', '/tmp/b/noop-1', True)
    """
    return s.model_copy(update={"web_port": free_port(), "datadir": str(Path(s.datadir) / f"{role}-{i}"),
                                "worker_id": f"{role}-{i}"})


def start_members(s: Settings, role: str, n: int, argv, logs: Path) -> list[Member]:
    """Start ``n`` processes, ``argv(settings)`` each, with their own settings in their environment."""
    members = []
    for i in range(n):
        ms = member_settings(s, role, i)
        Path(ms.datadir).mkdir(parents=True, exist_ok=True)
        log = logs / f"{role}-{i}.log"
        proc = subprocess.Popen(argv(ms), env=ms.as_env(), cwd=Path(__file__).resolve().parents[2],
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        members.append(Member(ms, proc, log))
    return members


def stop_members(members: list[Member], timeout: float = 60.0) -> None:
    """SIGTERM every member at once (each drains and commits), then wait for each."""
    for m in members:
        if m.proc.poll() is None:
            m.proc.terminate()
    for m in members:
        stop_child(m.proc, timeout=timeout)


def check_running(members: list[Member], what: str) -> None:
    """Raise if a member has exited: the phase cannot be measured without it."""
    for m in members:
        if m.proc.poll() is not None:
            raise RuntimeError(f"{what}: {m.settings.worker_id} exited with {m.proc.returncode} (log: {m.log})")


def wait_group_spread(s: Settings, group: str, members: list[Member], timeout: float = 180.0) -> None:
    """Wait until consumer group ``group`` is stable with exactly these members, each assigned some
    partitions of the event topics and all of those partitions assigned."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(s.kafka_client_config())
    wanted = {(s.topic(t), p) for t in EVENT_TOPICS for p in range(s.partitions)}
    deadline = time.monotonic() + timeout
    seen = "nothing yet"
    while time.monotonic() < deadline:
        check_running(members, f"waiting for group {group}")
        try:
            desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        except Exception as exc:  # the group does not exist until the first member joins
            seen = f"{type(exc).__name__}: {exc}"
        else:
            owned = [{(tp.topic, tp.partition) for tp in m.assignment.topic_partitions} & wanted
                     for m in desc.members]
            seen = f"{desc.state}, {len(desc.members)} members owning {[len(o) for o in owned]} event partitions"
            if (desc.state == ConsumerGroupState.STABLE and len(desc.members) == len(members)
                    and all(owned) and set().union(*owned) == wanted):
                return
        time.sleep(0.3)
    raise RuntimeError(f"group {group} did not spread {len(wanted)} partitions over {len(members)} members "
                       f"within {timeout:.0f} s (last seen: {seen})")
