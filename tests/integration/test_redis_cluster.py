"""The worker on a Redis Cluster of three primaries (stream/stack/redis_cluster.py), its prefix a
hash tag (STREAMREC_REDIS_CLUSTER): a stream applied exactly once across a SIGKILL, lists served
over HTTP, rows read back by the consumer SDK, and every key of the deployment in the one slot of
its tag, on the one node that serves it. Kafka is the shared test stack's."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
import uuid

import pytest
import redis
from pydantic import SecretStr

from consumers.embeddings import EmbeddingReader
from producers.simulator import World, WorldConfig
from stream.config import Settings
from stream.contract import validate_event
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.items import DirectBus, ItemOwner
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.stack.process import port_open
from stream.stack.redis import AclUser, reader_acl, worker_acl
from stream.stack.redis_cluster import RedisClusterService
from stream.state.keys import Keys, prefix_hash_tag
from stream.state.redis import RedisState
from tests.helpers import (applied, events_in_records, experiment_toml, publish_world, start_or_unavailable,
                           survives_a_redis_outage, wait_for)
from tests.secure import new_secret

pytestmark = pytest.mark.integration


def test_a_worker_on_a_redis_cluster_applies_each_event_once_and_serves(isolated_cluster, worker_factory, tmp_path):
    experiments = tmp_path / "experiments.toml"  # assignments and attribution run on the cluster too
    experiments.write_text(experiment_toml("blend", ("a", "b")))
    settings = isolated_cluster.model_copy(update={"experiments_path": str(experiments)})
    world = World(WorldConfig(n_users=60, n_items=80, seed=11))
    events = list(world.generate(1500, start_ts=1.7e9, step_seconds=0.5, run_id="cl"))
    worker = worker_factory(settings).start()
    publish_world(settings, world, events[:700])
    wait_for(lambda: applied(settings) >= 200, 60, "the first events applied")
    worker.stop(signal.SIGKILL)  # mid-stream: what it applied must count once, what it had not must come
    publish_world(settings, world, events[700:])
    worker = worker_factory(settings, "again").start()
    wait_for(lambda: applied(settings) >= len(events), 120, f"{len(events)} events applied")
    assert applied(settings) == len(events)
    assert events_in_records(settings) == len(events)  # each event's effect once, across the kill

    user = events[-1][1]["user_id"]
    with urllib.request.urlopen(f"{worker.url}/recommendations/{user}?k=5", timeout=10) as resp:
        served = json.loads(resp.read())
    assert served["user_id"] == user and len(served["items"]) == 5
    reader = EmbeddingReader.from_settings(settings)
    assert reader.user(user) is not None and reader.user(user).vector.shape == (settings.mf_factors,)
    item = served["items"][0]["item_id"]
    wait_for(lambda: reader.item(item), 30, f"item {item}'s row for readers")

    client = settings.redis_client()
    counts = client.hgetall(Keys(settings.redis_prefix).experiment_assigned("blend"))
    assigned = {k.decode(): int(v) for k, v in counts.items()}
    assert set(assigned) == {"a", "b"} and sum(assigned.values()) > 20, assigned
    client.close()

    # every key of the deployment hashes to its tag's slot, and only the node of that slot holds any
    client = settings.redis_client()
    keys = list(client.scan_iter(f"{settings.redis_prefix}:*", count=1000))
    assert len(keys) > 100
    slot = client.keyslot(Keys(settings.redis_prefix).slot)
    assert slot == client.keyslot(prefix_hash_tag(settings.redis_prefix))
    assert {client.keyslot(k) for k in keys} == {slot}
    holders = {node.port for node in client.get_primaries()
               if client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot, target_nodes=node)}
    assert holders == {client.get_node_from_key(Keys(settings.redis_prefix).slot).port}
    assert len(client.get_primaries()) == 3
    client.close()
    time.sleep(5.5)  # the periodic work (outbox sweep, coverage gauges: every 5 s) ran at least once more
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 300:][:2000]


def test_preflight_names_a_cluster_setting_that_does_not_match_the_server(isolated, redis_cluster_settings):
    from stream.preflight import ServiceError, check_redis

    on_cluster_as_single = isolated.model_copy(update={"redis_url": redis_cluster_settings.redis_url})
    with pytest.raises(ServiceError, match="is a node of a Redis Cluster: set STREAMREC_REDIS_CLUSTER=true"):
        check_redis(on_cluster_as_single, timeout=2)
    on_single_as_cluster = isolated.model_copy(update={"redis_cluster": True, "redis_prefix": "{x}"})
    with pytest.raises(ServiceError, match="did not answer as a Redis Cluster, and STREAMREC_REDIS_CLUSTER is set"):
        check_redis(on_single_as_cluster, timeout=2)
    check_redis(redis_cluster_settings.model_copy(update={"redis_prefix": "{x}"}), timeout=2)
    check_redis(isolated, timeout=2)


def test_acl_users_on_a_cluster_reach_their_own_prefix_only(tmp_path):
    """A second cluster, every node asking for a password, with the worker's and the reader's ACL
    users (stream.stack.redis): the engine commits as the worker, the SDK reads as the reader."""
    port = int(os.environ.get("STREAMREC_TEST_REDIS_CLUSTER_PORT", "17000")) + 10
    assert not any(port_open(p) for p in range(port, port + 3)), f"ports {port}-{port + 2} are taken"
    prefix = f"{{acl:{uuid.uuid4().hex[:8]}}}"
    passwords = {"default": new_secret("defaultpw"), "worker": new_secret("workerpw"), "reader": new_secret("readerpw")}
    base = Settings(stack_dir=str(tmp_path), redis_cluster_port=port, redis_password=passwords["default"],
                    redis_url="")
    service = RedisClusterService(base, (AclUser("worker", passwords["worker"], worker_acl(prefix)),
                                         AclUser("reader", passwords["reader"], reader_acl(prefix))))

    def as_user(user: str, key_prefix: str = prefix) -> Settings:
        return base.model_copy(update={"redis_cluster": True, "redis_url": f"redis://127.0.0.1:{port}/0",
                                       "redis_prefix": key_prefix, "redis_username": user,
                                       "redis_password": SecretStr(passwords[user])})

    config = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4}), rerank=None, behaviour=None)
    clicks = [validate_event("click", {"event_id": f"e{n}", "user_id": u, "item_id": i, "ts": 100.0 + n,
                                       "schema": "v1"}) for n, (u, i) in enumerate([("ann", "a"), ("ann", "b")])]

    async def step(settings: Settings) -> None:
        client = settings.redis_client(asyncio=True)
        state = RedisState(client, Keys(settings.redis_prefix), n_factors=4)
        table = ItemTable(config.hybrid)
        try:
            await Engine(config, state, table, DirectBus(ItemOwner(table, state, clock=lambda: 5.0)),
                         clock=lambda: 5.0).step(clicks)
        finally:
            await client.aclose()

    start_or_unavailable(service, "a Redis Cluster")
    try:
        assert wait_for(service.healthy, 30, "the password cluster")
        asyncio.run(step(as_user("worker")))
        reader = EmbeddingReader.from_settings(as_user("reader"))
        assert reader.user("ann") is not None and reader.item("a") is not None
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.redis.set(f"{prefix}:x", "1")  # read only
        with pytest.raises(redis.exceptions.NoPermissionError):  # the worker's scripts, on another prefix
            asyncio.run(step(as_user("worker", "{elsewhere}")))
        with pytest.raises(redis.exceptions.RedisClusterException, match="invalid username-password pair"):
            as_user("worker").model_copy(update={"redis_password": SecretStr("wrong")}).redis_client().ping()
    finally:
        service.proc.stop()


def test_the_slot_s_node_killed_and_started_again_mid_stream_loses_nothing(isolated, worker_factory, tmp_path):
    """kill -9 of the node that holds the deployment's slot, under load, and the node started again
    3 s later (a cluster of its own: the shared one stays up): the worker waits the outage out (it
    never takes it for a poison event), and every event is applied once; none is dead-lettered."""
    port = int(os.environ.get("STREAMREC_TEST_REDIS_CLUSTER_PORT", "17000")) + 20
    assert not any(port_open(p) for p in range(port, port + 3)), f"ports {port}-{port + 2} are taken"
    service = RedisClusterService(Settings(stack_dir=str(tmp_path), redis_cluster_port=port, redis_url=""))
    start_or_unavailable(service, "a Redis Cluster")
    try:
        assert wait_for(service.healthy, 30, "the cluster")
        settings = isolated.model_copy(update={"redis_cluster": True, "redis_cluster_port": port,
                                               "redis_url": f"redis://127.0.0.1:{port}/0",
                                               "redis_prefix": "{" + isolated.redis_prefix + "}"})
        client = settings.redis_client()
        victim_port = client.get_node_from_key(Keys(settings.redis_prefix).slot).port
        client.close()
        victim = next(p for p in service.proc.procs if p.run_dir.name == f"node-{victim_port}")
        survives_a_redis_outage(settings, worker_factory, lambda: os.killpg(victim.pid(), signal.SIGKILL),
                                # start() starts the killed node only; it finds its slots and peers in nodes.conf
                                lambda: (service.start(), wait_for(service.healthy, 30, "the cluster, again")))
    finally:
        service.proc.stop()
