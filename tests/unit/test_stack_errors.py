"""A missing Java, Maven or service binary gives a clear message, not a stack trace."""

from __future__ import annotations

import pytest

from stream.config import Settings
from stream.stack import Stack, StackError
from stream.stack.kafka import KafkaService, ensure_jars
from stream.stack.manager import main_stack


def test_missing_java_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(StackError, match=r"Java .* apt-get install openjdk-17-jre-headless"):
        KafkaService(Settings(cache_dir=str(tmp_path))).start()


def test_missing_maven_without_cached_jars(monkeypatch, tmp_path):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(StackError, match=r"Maven is not installed.*apt-get install maven"):
        ensure_jars(Settings(cache_dir=str(tmp_path)))


def test_stack_command_prints_the_message_and_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("stream.stack.manager.port_open", lambda port: False)
    # a stack directory of its own: one named by the environment may hold a running broker
    settings = Settings(cache_dir=str(tmp_path), stack_dir=str(tmp_path / "stack"), kafka_port=1, redis_port=2,
                        prometheus_port=3)
    assert main_stack(settings, "up", ("kafka",)) == 2
    err = capsys.readouterr().err
    assert "Java is not installed" in err and "Traceback" not in err


def test_unknown_service_is_refused(tmp_path):
    with pytest.raises(StackError, match="unknown service"):
        Stack(Settings(cache_dir=str(tmp_path)), ("zookeeper",))


def test_a_cluster_is_healthy_only_when_every_node_says_so(monkeypatch, tmp_path):
    """After a start one node can see the cluster as ok while another still answers CLUSTERDOWN."""
    from stream.stack.redis_cluster import SLOTS, RedisClusterService

    service = RedisClusterService(Settings(stack_dir=str(tmp_path), redis_cluster_port=17500, redis_url=""))
    ok = {"cluster_state": "ok", "cluster_known_nodes": 3, "cluster_slots_ok": SLOTS}
    views = {port: dict(ok) for port in service.ports}

    class Node:
        def __init__(self, port):
            self.port = port

        def cluster(self, what):
            return views[self.port]

        def close(self):
            pass

    monkeypatch.setattr(service, "_client", Node)
    assert service.healthy()
    views[service.ports[2]]["cluster_state"] = "fail"
    assert not service.healthy()
    views[service.ports[2]] = dict(ok, cluster_slots_ok=SLOTS - 1)
    assert not service.healthy()
