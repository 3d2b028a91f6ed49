"""Kafka over SASL_SSL with SCRAM-SHA-512, on a broker this module starts (free ports, its own data
folder; the shared test stack is left alone), with a certificate from a CA made here by openssl,
and a Redis that asks for a password (requirepass). The worker (Faust's aiokafka consumer and the
confluent-kafka producer and consumers), the producer SDK and CLI and the consumer SDK and CLI
all work through them; a wrong password, a wrong CA and a missing password each end in one clear
line; no secret is in any log or command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from stream.config import Settings
from stream.stack.process import free_port
from tests.conftest import ROOT, WorkerProcess
from tests.helpers import applied, publish_world, wait_for
from tests.secure import Commands, recording_popen, TlsFiles, find_secrets, make_tls, new_secret, start_redis, start_sasl_kafka

pytestmark = pytest.mark.integration

USER = "streamrec-app"


@dataclass
class Secure:
    folder: Path
    commands: Commands
    tls: TlsFiles
    settings: Settings          # SASL_SSL to the module's broker, the module's Redis with its password
    secrets: list[str]

    def namespace(self, **update) -> Settings:
        """These settings with a fresh app id, topic prefix, Redis prefix and web port."""
        tag = uuid.uuid4().hex[:10]
        return self.settings.model_copy(update={
            "app_id": f"sec-{tag}", "topic_prefix": f"s{tag}.", "redis_prefix": f"sec:{tag}",
            "web_port": free_port(), "datadir": str(self.folder / "workers" / tag),
            "rec_min_interval_seconds": 0.0, "batch_within_seconds": 0.1, **update})

    def run(self, argv: list[str], settings: Settings, timeout: float = 120.0) -> tuple[subprocess.CompletedProcess, float]:
        """A CLI as a subprocess with ``settings`` in its environment; its output is kept as a log."""
        self.commands.record(argv)
        started = time.monotonic()
        proc = subprocess.run(argv, env=settings.as_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        (logs / f"cli-{uuid.uuid4().hex[:8]}.log").write_text(" ".join(argv) + "\n" + proc.stdout + proc.stderr)
        return proc, time.monotonic() - started


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sasl-ssl")
    commands = Commands()
    with recording_popen(commands):
        tls = make_tls(folder / "tls", commands)
        scram, redis_password = new_secret("scram"), new_secret("redispw")
        broker, kafka = start_sasl_kafka(folder, tls, commands, USER, scram)
        redis_service = None
        try:
            redis_service, redis_settings = start_redis(folder / "redis", commands, redis_password)
            settings = kafka.model_copy(update={"redis_url": f"redis://127.0.0.1:{redis_settings.redis_port}/0",
                                                "redis_password": SecretStr(redis_password)})
            yield Secure(folder, commands, tls, settings, [scram, redis_password, *tls.passwords])
        finally:
            broker.proc.stop()
            if redis_service is not None:
                redis_service.proc.stop()


def _cli(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"{module}.cli", *args]


def test_credentials_give_faust_sasl_ssl_with_scram_and_the_ca(secure):
    """stream.faustapp.app._credentials, from these settings, as aiokafka receives them."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from stream.faustapp.app import _credentials

    auth = credentials_to_aiokafka_auth(_credentials(secure.settings))
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == USER and auth["sasl_plain_password"] == secure.secrets[0]
    subjects = [dict(x[0] for x in ca["subject"]) for ca in auth["ssl_context"].get_ca_certs()]
    assert subjects == [{"commonName": "streamrec-test-ca"}]
    assert auth["ssl_context"].check_hostname


def test_worker_producer_and_consumer_work_through_sasl_ssl(secure):
    from consumers.sdk import dead_letters, latest_recommendations
    from producers.simulator import World, WorldConfig
    from stream.topics import ensure_topics

    settings = secure.namespace()
    ensure_topics(settings, quiet=True)
    worker = WorkerProcess(settings, secure.folder / "logs" / f"worker-{settings.app_id}.log")
    (secure.folder / "logs").mkdir(exist_ok=True)
    worker.start()
    try:
        secure.commands.record_pid(worker.proc.pid)
        world = World(WorldConfig(n_users=25, n_items=40, n_segments=2, n_categories=4, seed=11))
        events = list(world.generate(400, run_id="sasl"))
        sent = publish_world(settings, world, events, raw=[("clicks", b"u-broken", b"not json")])
        assert sent.delivered == sent.sent
        wait_for(lambda: applied(settings) >= len(events), 90, "every event applied by the worker through SASL_SSL")

        # The consumer SDK reads what the worker published through SASL_SSL.
        user = events[-1][1]["user_id"]
        rec = wait_for(lambda: latest_recommendations(user, settings), 30, f"a list for {user} on the topic")
        assert rec["user_id"] == user and rec["items"]
        dead = wait_for(lambda: list(dead_letters(settings)), 30, "the broken event dead-lettered")
        assert [d.reason for d in dead] == ["not_json"]

        # The item side: the owners' consumer group and the item-factors reader (confluent-kafka).
        def item_rows_read():
            import urllib.request

            with urllib.request.urlopen(f"{worker.url}/health", timeout=5) as resp:
                items = json.loads(resp.read())["items"]
            # one worker owns every partition: its own rows come back through item-factors as "own"
            return items["owner_updates_applied"] > 0 and items["rows_read"] + items["rows_own_passed"] > 0
        wait_for(item_rows_read, 60, "item updates applied by their owner and item rows read back")

        # The CLIs: publish a file, ask the worker for a list, read it back.
        lines = secure.folder / "events.jsonl"
        lines.write_text("".join(json.dumps({"type": "click", "event_id": f"cli-{i}", "user_id": "cli-user",
                                              "item_id": world.item_ids[i], "ts": time.time(), "schema": "v1"})
                                  + "\n" for i in range(3)))
        out, _ = secure.run(_cli("producers", "file", str(lines), "--quiet"), settings)
        assert out.returncode == 0 and json.loads(out.stdout)["delivered"] == 3, out.stderr
        out, _ = secure.run(_cli("producers", "request", "--user", user, "--k", "5", "--timeout", "60"), settings)
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert answer["user_id"] == user and answer["trigger"] == "request" and len(answer["items"]) == 5
        out, _ = secure.run(_cli("consumers", "recs", "--user", user), settings)
        assert out.returncode == 0 and json.loads(out.stdout)["user_id"] == user, out.stderr
    finally:
        worker.stop()


def _bad(secure: Secure, case: str) -> Settings:
    s = secure.namespace()
    if case == "wrong-password":
        return s.model_copy(update={"kafka_sasl_password": SecretStr(new_secret("wrongpw"))})
    if case == "wrong-ca":
        return s.model_copy(update={"kafka_ssl_cafile": str(secure.tls.other_ca)})
    return s.model_copy(update={"kafka_sasl_password": SecretStr("")})


_EXPECTED = {
    "wrong-password": "refused the SCRAM-SHA-512 login of user 'streamrec-app'",
    "wrong-ca": "the TLS handshake failed (certificate verify failed): check STREAMREC_KAFKA_SSL_CAFILE",
    "missing-password": "STREAMREC_KAFKA_SASL_PASSWORD is empty",
}
_PROGRAMS = {
    "worker": [sys.executable, "-m", "stream.cli", "worker"],
    "streamrec-produce": _cli("producers", "simulate", "--events", "5", "--users", "3", "--items", "3", "--quiet"),
    "streamrec-consume": _cli("consumers", "recs"),
}


@pytest.mark.parametrize("case", sorted(_EXPECTED))
@pytest.mark.parametrize("program", sorted(_PROGRAMS))
def test_bad_credentials_end_in_one_clear_line(secure, program, case):
    settings = _bad(secure, case)
    out, seconds = secure.run(_PROGRAMS[program], settings, timeout=60)
    text = (out.stdout + out.stderr).strip()
    assert out.returncode != 0, text
    assert len(text.splitlines()) == 1, f"{program} printed more than one line:\n{text}"
    assert "Traceback" not in text and _EXPECTED[case] in text, text
    assert text.startswith("streamrec worker:" if program == "worker" else f"{program}:"), text
    # Recognised at once, not after the 15 s an unreachable broker is given.
    assert seconds < 12, f"{program} took {seconds:.0f} s to give up"


@pytest.mark.parametrize("case", ["wrong-password", "wrong-ca"])
def test_the_sdks_give_up_at_once_too(secure, case):
    """An app using the SDKs directly (no CLI check first): a refused login or TLS handshake
    ends flush() and a topic read at once, with the same one-line message, not a timeout."""
    from consumers.sdk import latest_recommendations
    from producers.sdk import DeliveryError, EventProducer
    from stream.preflight import ServiceError

    settings = _bad(secure, case)
    started = time.monotonic()
    producer = EventProducer(settings)
    producer.send("click", {"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1.0, "schema": "v1"})
    with pytest.raises(DeliveryError) as failed:
        producer.close(timeout=30)  # flushes, and closes even when the flush fails
    assert _EXPECTED[case] in str(failed.value) and time.monotonic() - started < 10
    del producer  # the client goes with it, instead of retrying in the background
    started = time.monotonic()
    with pytest.raises(ServiceError) as failed:
        latest_recommendations("u1", settings)
    assert _EXPECTED[case] in str(failed.value) and time.monotonic() - started < 10


def test_no_secret_in_any_log_or_command_line(secure):
    """Every file the module wrote (broker, Redis and worker logs, CLI output, openssl's files)
    except the 0600 files that exist to hold secrets, every command line it ran, and every
    process running now: no password, and the scan would have seen one (the broker's
    server.properties, which must hold the keystore password, is found)."""
    secure.commands.record_running()
    scanned = [p for p in secure.folder.rglob("*") if p.is_file()]
    assert any(p.name == "kafka.log" for p in scanned) and any(p.name.startswith("worker-") for p in scanned)
    assert len({line for line in secure.commands.lines if " req " in line or " x509 " in line or " pkcs12 " in line}) == 5
    assert find_secrets(secure.secrets, secure.commands, [secure.folder]) == []
    props = next(p for p in scanned if p.name == "server.properties")
    assert props.stat().st_mode & 0o777 == 0o600
    assert secure.tls.store_password.encode() in props.read_bytes()
