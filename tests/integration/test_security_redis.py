"""Redis that asks for credentials: a redis-server this module starts on a free port (config in a
0600 file) with ``requirepass`` for the default user, an ACL user for the worker limited to this
module's key prefix (stream.stack.redis.worker_acl) and a read-only one for the consumer SDK
(reader_acl). The worker runs its Lua scripts through the ACL user; Redis checks the key pattern
inside the scripts too. A wrong or missing password ends the worker in one line. Kafka is the
shared test stack's.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from stream.config import Settings
from stream.stack.redis import AclUser, reader_acl, worker_acl
from tests.conftest import ROOT, WorkerProcess
from tests.helpers import applied, publish_world, wait_for
from tests.secure import Commands, recording_popen, find_secrets, new_secret, start_redis

pytestmark = pytest.mark.integration


@dataclass
class AuthRedis:
    folder: Path
    commands: Commands
    port: int
    prefix: str                 # the worker and reader users' keys
    admin: redis.Redis          # the default user, with the requirepass password
    passwords: dict[str, str]   # user -> password ("default", "worker", "reader")

    def client(self, user: str, password: str | None = None) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, username=None if user == "default" else user,
                           password=self.passwords[user] if password is None else password, socket_timeout=5,
                           retry=Retry(NoBackoff(), 0))  # a refused login is final: no retries

    def settings(self, base: Settings, user: str, **update) -> Settings:
        """``base`` pointed at this Redis as ``user``."""
        return base.model_copy(update={
            "redis_url": f"redis://127.0.0.1:{self.port}/0", "redis_prefix": self.prefix,
            "redis_username": "" if user == "default" else user,
            "redis_password": SecretStr(self.passwords.get(user, "")), **update})


@pytest.fixture(scope="module")
def auth_redis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("redis-auth")
    commands = Commands()
    prefix = f"acl:{uuid.uuid4().hex[:10]}"
    passwords = {"default": new_secret("defaultpw"), "worker": new_secret("workerpw"), "reader": new_secret("readerpw")}
    users = (AclUser("worker", passwords["worker"], worker_acl(prefix)),
             AclUser("reader", passwords["reader"], reader_acl(prefix)))
    with recording_popen(commands):
        service, settings = start_redis(folder, commands, passwords["default"], users)
        admin = redis.Redis(host="127.0.0.1", port=settings.redis_port, password=passwords["default"])
        try:
            yield AuthRedis(folder, commands, settings.redis_port, prefix, admin, passwords)
        finally:
            service.proc.stop()


def test_every_user_needs_its_password(auth_redis):
    with pytest.raises(redis.AuthenticationError):  # NOAUTH: requirepass
        redis.Redis(host="127.0.0.1", port=auth_redis.port, retry=Retry(NoBackoff(), 0)).ping()
    for user in ("default", "worker", "reader"):
        with pytest.raises(redis.AuthenticationError):
            auth_redis.client(user, password="not-" + auth_redis.passwords[user]).ping()
        assert auth_redis.client(user).ping()


def test_the_worker_user_is_limited_to_its_prefix_also_inside_scripts(auth_redis):
    w, p = auth_redis.client("worker"), auth_redis.prefix
    other = f"other:{uuid.uuid4().hex[:6]}"
    auth_redis.admin.set(f"{other}:secret", "x")
    assert w.set(f"{p}:k", "1") and w.get(f"{p}:k") == b"1"
    with pytest.raises(redis.exceptions.NoPermissionError):
        w.get(f"{other}:secret")
    with pytest.raises(redis.exceptions.NoPermissionError):
        w.set(f"{other}:k", "1")
    # Lua by EVALSHA, as the worker runs its scripts: a key named in ARGV (as commit.lua names
    # them) is checked when the script calls Redis; one in KEYS before it runs.
    sha = w.script_load("return redis.call('SET', ARGV[1], 'x')")
    assert w.evalsha(sha, 0, f"{p}:from-script") == b"OK"
    with pytest.raises(redis.exceptions.ResponseError, match="can't access at least one of the keys"):
        w.evalsha(sha, 0, f"{other}:from-script")
    sha_keys = w.script_load("return redis.call('GET', KEYS[1])")
    with pytest.raises(redis.exceptions.NoPermissionError):
        w.evalsha(sha_keys, 1, f"{other}:secret")
    assert auth_redis.admin.exists(f"{other}:from-script") == 0 and auth_redis.admin.get(f"{other}:secret") == b"x"
    # No administration, no key enumeration (SCAN and KEYS would show other prefixes' key names).
    for command in (("SCAN", 0), ("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "GET", "requirepass"), ("ACL", "LIST"),
                    ("FUNCTION", "FLUSH"), ("RANDOMKEY",), ("MONITOR",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            w.execute_command(*command)
    r = auth_redis.client("reader")
    assert r.get(f"{p}:k") == b"1"
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.set(f"{p}:k", "2")
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.get(f"{other}:secret")
    auth_redis.admin.delete(f"{p}:k", f"{p}:from-script", f"{other}:secret")


def test_worker_and_sdks_work_through_the_acl_users(auth_redis, isolated):
    """The worker as the ACL user (batches committed by commit.lua, item rows by the owner), the
    producer SDK (Kafka only), the consumer SDK's EmbeddingReader as the read-only user; Redis
    denied nothing (ACL LOG is empty)."""
    from consumers.embeddings import EmbeddingReader
    from consumers.sdk import latest_recommendations
    from producers.simulator import World, WorldConfig

    auth_redis.admin.acl_log_reset()
    settings = auth_redis.settings(isolated, "worker")
    logs = auth_redis.folder / "logs"
    logs.mkdir(exist_ok=True)
    worker = WorkerProcess(settings, logs / f"worker-{settings.app_id}.log").start()
    try:
        auth_redis.commands.record_pid(worker.proc.pid)
        world = World(WorldConfig(n_users=20, n_items=30, n_segments=2, n_categories=4, seed=5))
        events = list(world.generate(300, run_id="acl"))
        publish_world(settings, world, events)
        wait_for(lambda: applied(settings) >= len(events), 90, "every event applied through the ACL user")
        user = events[-1][1]["user_id"]
        assert wait_for(lambda: latest_recommendations(user, settings), 30, "a list on the topic")["user_id"] == user
        reader = EmbeddingReader.from_settings(auth_redis.settings(isolated, "reader"))
        wait_for(lambda: reader.user(user), 30, f"{user}'s MF row, read as the read-only user")
        wait_for(lambda: reader.item(world.item_ids[0]) or reader.item(world.item_ids[1]), 30,
                 "an item row written by its owner through the ACL user")
    finally:
        worker.stop()
    assert auth_redis.admin.acl_log() == [], "Redis denied the worker or the reader a command or key"


_CASES = {
    "wrong-password": ("worker", {"redis_password": SecretStr("not-the-password")},
                       "refused the login of user worker"),
    "missing-password": ("default", {"redis_password": SecretStr("")},
                         "asks for a password and STREAMREC_REDIS_PASSWORD is empty"),
    "other-prefix": ("worker", {"redis_prefix": "someone-else"},
                     "user worker may not use keys under STREAMREC_REDIS_PREFIX 'someone-else'"),
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_bad_redis_credentials_stop_the_worker_in_one_line(auth_redis, stack_settings, case):
    user, update, expected = _CASES[case]
    tag = uuid.uuid4().hex[:8]
    base = stack_settings.model_copy(update={"app_id": f"acl-{tag}", "topic_prefix": f"a{tag}."})
    settings = auth_redis.settings(base, user)
    settings = settings.model_copy(update=update)
    argv = [sys.executable, "-m", "stream.cli", "worker"]
    auth_redis.commands.record(argv)
    started = time.monotonic()
    out = subprocess.run(argv, env=settings.as_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    text = (out.stdout + out.stderr).strip()
    (auth_redis.folder / f"worker-{case}.log").write_text(text)
    assert out.returncode != 0 and len(text.splitlines()) == 1, text
    assert text.startswith("streamrec worker: Redis at 127.0.0.1:") and expected in text, text
    assert "Traceback" not in text and seconds < 12


def test_no_password_in_logs_config_or_command_lines(auth_redis):
    """ACL users' passwords are not even in redis.conf (only their SHA-256); the default user's
    is, as requirepass, in the 0600 file; none is in a log or a command line."""
    auth_redis.commands.record_running()
    conf = next(auth_redis.folder.rglob("redis.conf"))
    text = conf.read_text()
    assert conf.stat().st_mode & 0o777 == 0o600
    assert auth_redis.passwords["default"] in text
    assert auth_redis.passwords["worker"] not in text and auth_redis.passwords["reader"] not in text
    assert "user worker on #" in text
    scanned = [p.name for p in auth_redis.folder.rglob("*") if p.is_file()]
    assert "redis.log" in scanned and any(n.startswith("worker-") for n in scanned)
    assert find_secrets(list(auth_redis.passwords.values()), auth_redis.commands, [auth_redis.folder]) == []
