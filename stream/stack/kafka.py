"""Apache Kafka in KRaft combined mode, from Maven Central jars cached outside git."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from stream.config import Settings
from stream.stack.process import Service, StackError, port_open

__all__ = ["KafkaService", "ensure_jars", "require_java"]

# log4j-slf4j-impl must match the log4j-core that kafka_2.13 pulls in.
_LOG4J_VERSION = "2.24.3"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.streamrec</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
"""


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "Java is not installed, and the local Kafka broker needs Java 17 or newer. "
            "Install it (Debian: apt-get install openjdk-17-jre-headless) or point "
            "STREAMREC_BOOTSTRAP_SERVERS at an existing broker."
        )
    return java


def ensure_jars(settings: Settings, *, quiet: bool = False) -> Path:
    """Kafka's runtime jars, fetched once through Maven into the cache; returns their folder."""
    base = settings.cache_path / "kafka" / settings.kafka_version
    jars = base / "jars"
    if (jars / f"kafka_2.13-{settings.kafka_version}.jar").exists() and (base / ".complete").exists():
        return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven is not installed, and it is needed once to fetch Apache Kafka's jars from Maven Central "
            f"into {jars}. Install it (Debian: apt-get install maven), then run the command again."
        )
    base.mkdir(parents=True, exist_ok=True)
    (base / "pom.xml").write_text(_POM.format(kafka=settings.kafka_version, log4j=_LOG4J_VERSION))
    if not quiet:
        print(f"fetching Apache Kafka {settings.kafka_version} jars from Maven Central into {jars} ...", file=sys.stderr)
    proc = subprocess.run(
        [mvn, "-B", "-q", f"{_DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={jars}"],
        cwd=base,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise StackError(f"Maven could not fetch the Kafka jars (exit {proc.returncode}):\n{tail}")
    (base / ".complete").write_text(settings.kafka_version)
    return jars


def _cluster_id() -> str:
    """A random KRaft cluster id (22 characters of URL-safe base64). Never one that starts with
    '-': StorageTool would read it as an option (one start in 64 failed that way)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService(Service):
    name = "kafka"
    marker = "kafka.Kafka"
    port_setting = "kafka_port"

    def listener_properties(self) -> list[str]:
        """The listener lines of server.properties: a PLAINTEXT listener on STREAMREC_KAFKA_PORT and
        the controller's. A subclass adds listeners (tests/secure.py: SASL_SSL beside it)."""
        s = self.settings
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]

    def _properties(self) -> Path:
        s = self.settings
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{s.kafka_controller_port}",
            *self.listener_properties(),
            f"log.dirs={self.dir / 'data'}",
            f"num.partitions={s.partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=168",
        ]
        props = self.dir / "server.properties"
        # 0600: a subclass's listeners may name keystore passwords.
        fd = os.open(props, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file was there before
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        (self.dir / "log4j2.properties").write_text(_LOG4J2)
        return props

    def start(self) -> None:
        java = require_java()
        jars = ensure_jars(self.settings)
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self._properties()
        classpath = f"{jars}/*"
        if not (self.dir / "data" / "meta.properties").exists():
            fmt = subprocess.run(
                [java, "-cp", classpath, f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                 "kafka.tools.StorageTool", "format", "--standalone", "-t", _cluster_id(), "-c", str(props)],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise StackError(f"formatting Kafka's storage failed (exit {fmt.returncode}):\n{fmt.stdout}{fmt.stderr}")
        self.proc.start(
            [java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
             "-cp", classpath, "kafka.Kafka", str(props)]
        )

    def healthy(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({**self.settings.kafka_client_config(), "log_level": 0})
            admin.list_topics(timeout=3)
            return True
        except Exception:
            return False
