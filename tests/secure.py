"""Services that ask for credentials, started by the security tests on free ports: a KRaft broker
with a SASL_SSL (SCRAM-SHA-512) listener and a certificate from a CA made here with openssl, and
redis-servers with ``requirepass`` and ACL users. Also the record of every command line the
tests run and the check that no secret is in any of them or in any log.

Passwords never go on a command line: openssl reads them from 0600 files (``-passin file:``),
the broker from its 0600 server.properties, redis-server from its 0600 config, and the SCRAM
credential is created with Kafka's admin API (``kafka-storage format --add-scram`` would put it
on a command line).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stream.config import Settings
from stream.stack.kafka import KafkaService
from stream.stack.process import free_port
from stream.stack.redis import AclUser, RedisService, write_private
from tests.helpers import unavailable

__all__ = ["Commands", "TlsFiles", "make_tls", "SaslSslKafka", "start_sasl_kafka", "start_redis", "new_secret",
           "find_secrets", "recording_popen"]


def new_secret(label: str) -> str:
    """A random secret that cannot occur anywhere by chance (its label makes a leak easy to read)."""
    return f"{label}-{secrets.token_hex(12)}"


@dataclass
class Commands:
    """Every command line a test module runs, kept for the leak check."""

    lines: list[str] = field(default_factory=list)

    def record(self, argv) -> None:
        self.lines.append(" ".join(map(str, argv)))

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        self.record(argv)
        return subprocess.run(argv, capture_output=True, text=True, **kwargs)

    def record_pid(self, pid: int) -> None:
        """The command line of a running process as the kernel shows it (after any exec)."""
        try:
            self.record([Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")])
        except OSError:
            pass

    def record_running(self) -> None:
        """Every process on the machine now: secrets are random per run, so any hit is a leak of ours."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                self.record_pid(int(entry.name))


@contextmanager
def recording_popen(commands: Commands):
    """Record the argument list of every process this test process starts meanwhile (through
    subprocess: the stack's services, workers, CLIs, openssl). A process may rewrite its own
    command line once started (redis-server does), so what it was started with is what counts."""
    real_init = subprocess.Popen.__init__

    def init(self, args, *more, **kwargs):
        commands.record(list(args) if isinstance(args, (list, tuple)) else [args])
        real_init(self, args, *more, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", init)
        yield


def find_secrets(secret_values: list[str], commands: Commands, roots: list[Path]) -> list[str]:
    """Where any of the secrets appears: a recorded command line, or any file under ``roots``
    other than the 0600 config files that must hold them (listed by the caller's ``allowed``)."""
    hits = []
    for line in commands.lines:
        hits += [f"command line: {line[:200]}" for s in secret_values if s in line]
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.name in _SECRET_FILES:
                continue
            data = path.read_bytes()
            hits += [f"{path}: holds {s.split('-')[0]}" for s in secret_values if s.encode() in data]
    return hits


# Files that exist to hold a secret (0600): the password files openssl reads, the keystore's
# properties, redis.conf (its requirepass). Everything else under the test's folders is checked.
_SECRET_FILES = {"ca.pass", "key.pass", "store.pass", "server.properties", "redis.conf"}


def _openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        unavailable("openssl is not installed (Debian: apt-get install openssl; scripts/bootstrap does)")
    return exe


@dataclass(frozen=True)
class TlsFiles:
    ca: Path              # the CA certificate (PEM) clients trust
    other_ca: Path        # a CA that did not sign the broker's certificate
    keystore: Path        # PKCS12: the broker's key and certificate chain
    store_password: str
    passwords: tuple[str, ...]  # every password made here (for the leak check)


def make_tls(folder: Path, commands: Commands) -> TlsFiles:
    """A CA, the broker's key and certificate (for localhost and 127.0.0.1) signed by it, as a
    PKCS12 keystore, and a second, unrelated CA; every password passed through a 0600 file."""
    openssl = _openssl()
    folder.mkdir(parents=True, exist_ok=True)
    pw = {name: new_secret(name.replace(".", "")) for name in ("ca.pass", "key.pass", "store.pass")}
    for name, value in pw.items():
        write_private(folder / name, value + "\n")
    f = {name: str(folder / name) for name in ("ca.key", "ca.pem", "other.key", "other.pem", "broker.key",
                                               "broker.csr", "broker.pem", "broker.p12", "ext.cnf")}
    (folder / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                                    "keyUsage=critical,digitalSignature,keyEncipherment\n")
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-days", "2", "-subj", "/CN=streamrec-test-ca",
         *ca_ext, "-keyout", f["ca.key"], "-out", f["ca.pem"], "-passout", f"file:{folder / 'ca.pass'}"],
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-days", "2", "-subj", "/CN=some-other-ca",
         *ca_ext, "-keyout", f["other.key"], "-out", f["other.pem"], "-passout", f"file:{folder / 'ca.pass'}"],
        [openssl, "req", "-newkey", "rsa:2048", "-sha256", "-subj", "/CN=localhost", "-keyout", f["broker.key"],
         "-out", f["broker.csr"], "-passout", f"file:{folder / 'key.pass'}"],
        [openssl, "x509", "-req", "-in", f["broker.csr"], "-CA", f["ca.pem"], "-CAkey", f["ca.key"],
         "-passin", f"file:{folder / 'ca.pass'}", "-CAcreateserial", "-days", "2", "-sha256",
         "-extfile", f["ext.cnf"], "-out", f["broker.pem"]],
        [openssl, "pkcs12", "-export", "-in", f["broker.pem"], "-inkey", f["broker.key"], "-certfile", f["ca.pem"],
         "-name", "broker", "-passin", f"file:{folder / 'key.pass'}", "-out", f["broker.p12"],
         "-passout", f"file:{folder / 'store.pass'}"],
    ]
    for argv in steps:
        proc = commands.run(argv, cwd=folder)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:3])} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return TlsFiles(ca=Path(f["ca.pem"]), other_ca=Path(f["other.pem"]), keystore=Path(f["broker.p12"]),
                    store_password=pw["store.pass"], passwords=tuple(pw.values()))


class SaslSslKafka(KafkaService):
    """The stack's KRaft broker with a second listener, SASL_SSL with SCRAM-SHA-512. The PLAINTEXT
    listener (127.0.0.1 only) carries the broker's own traffic and the admin call that creates
    the SCRAM credential; clients under test use only the SASL_SSL one."""

    def __init__(self, settings: Settings, sasl_port: int, tls: TlsFiles):
        super().__init__(settings)
        self.sasl_port = sasl_port
        self.tls = tls

    def listener_properties(self) -> list[str]:
        s = self.settings
        prefix = "listener.name.sasl_ssl."
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port},"
            f"SASL_SSL://127.0.0.1:{self.sasl_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},SASL_SSL://127.0.0.1:{self.sasl_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            f"{prefix}scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"{prefix}ssl.keystore.type=PKCS12",
            f"{prefix}ssl.keystore.location={self.tls.keystore}",
            f"{prefix}ssl.keystore.password={self.tls.store_password}",
            f"{prefix}ssl.key.password={self.tls.store_password}",
        ]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def start_sasl_kafka(folder: Path, tls: TlsFiles, commands: Commands, user: str, password: str,
                     partitions: int = 4) -> tuple[SaslSslKafka, Settings]:
    """Start the broker, create the SCRAM-SHA-512 credential with the admin API, and wait until a
    client logs in through SASL_SSL; returns it and the clients' settings (SASL_SSL only)."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    from stream.stack.process import StackError

    from stream.stack.kafka import require_java, ensure_jars

    plain = Settings(stack_dir=str(folder), kafka_port=free_port(), kafka_controller_port=free_port(),
                     partitions=partitions, bootstrap_servers="")
    try:  # what the machine may lack; a broker that then fails to start is an error of the test's
        require_java()
        ensure_jars(plain, quiet=True)
    except StackError as exc:
        unavailable(f"the SASL_SSL test broker cannot start: {exc}")
    broker = SaslSslKafka(plain, free_port(), tls)
    broker.start()
    commands.record_pid(broker.proc.pid())
    if not _wait(broker.healthy, 90):
        tail = broker.proc.log_tail()
        broker.proc.stop()
        raise AssertionError(f"the SASL_SSL test broker did not become healthy; log tail:\n{tail}")
    admin = AdminClient(plain.kafka_client_config())
    upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)
    client = Settings(bootstrap_servers=f"127.0.0.1:{broker.sasl_port}", kafka_security_protocol="SASL_SSL",
                      kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username=user, kafka_sasl_password=password,
                      kafka_ssl_cafile=str(tls.ca), partitions=partitions)

    def logged_in() -> bool:
        from stream.preflight import ServiceError, check_kafka

        try:
            check_kafka(client, timeout=3)
            return True
        except ServiceError:
            return False

    if not _wait(logged_in, 60):
        tail = broker.proc.log_tail()
        broker.proc.stop()
        raise AssertionError(f"no SASL_SSL login to the test broker within 60 s; log tail:\n{tail}")
    return broker, client


def start_redis(folder: Path, commands: Commands, password: str,
                users: tuple[AclUser, ...] = ()) -> tuple[RedisService, Settings]:
    """A redis-server on a free port whose default user needs ``password`` (requirepass), with
    ``users`` besides; returns it and settings for its default user."""
    from stream.stack.process import StackError

    settings = Settings(stack_dir=str(folder), redis_port=free_port(), redis_password=password, redis_url="")
    redis = RedisService(settings, users)
    try:
        redis.start()
    except StackError as exc:  # only raised when redis-server is not installed
        unavailable(f"the test's redis-server could not start: {exc}")
    commands.record_pid(redis.proc.pid())
    if not _wait(redis.healthy, 15):
        tail = redis.proc.log_tail()
        redis.proc.stop()
        raise AssertionError(f"the test's redis-server did not answer; log tail:\n{tail}")
    return redis, settings
