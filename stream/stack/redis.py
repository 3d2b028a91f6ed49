"""redis-server (Debian's package) as a local process with append-only persistence, and the ACL
rules streamrec's clients need.

Passwords go into a 0600 config file, never on a command line (``ps`` shows command lines to
every user). ACL users' passwords are written as their SHA-256 (``#<hex>``), so the file holds
no password of theirs at all.

Examples
--------
>>> worker_acl("streamrec")
'resetkeys ~streamrec:* resetchannels -@all +@read +@write +@connection +@transaction +evalsha +eval +script|load +script|exists -@dangerous -@admin -@blocking -function -scan -randomkey -dbsize +cluster|slots'
>>> reader_acl("streamrec")
'resetkeys %R~streamrec:* resetchannels -@all +@read +@connection -@dangerous -@admin -@blocking -function -scan -randomkey -dbsize +cluster|slots'
>>> quote_config_value('pa ss"word')
'"pa ss\\\\"word"'
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from stream.stack.process import Service, StackError

__all__ = ["RedisService", "AclUser", "worker_acl", "reader_acl", "quote_config_value", "write_private"]

# Denied to both: administration, blocking calls, FUNCTION (@write holds FUNCTION FLUSH), and the
# commands that list or count keys, which ignore ACL key patterns: a user limited to its prefix
# would see every other prefix's key names (which name users) through them.
_DENIED = "-@dangerous -@admin -@blocking -function -scan -randomkey -dbsize"
# What a Redis Cluster client asks a node to find the others: the slots' map, nothing else of CLUSTER.
_CLUSTER = "+cluster|slots"


def worker_acl(prefix: str) -> str:
    """ACL rules for a worker limited to the keys under ``prefix``: reads and writes, MULTI/EXEC,
    Lua scripts by EVALSHA (and the EVAL / SCRIPT LOAD that redis-py falls back to after a
    NOSCRIPT), CLUSTER SLOTS (a cluster client finds the nodes with it; a single Redis refuses it
    anyway); no administration (CONFIG, ACL, FLUSHALL, MONITOR...), no key enumeration, no
    pub/sub. Redis checks the key patterns inside scripts too (a script's ``redis.call`` on
    another key fails with NOPERM): tests/integration/test_security_redis.py shows it, and
    tests/integration/test_redis_cluster.py the rules on a cluster."""
    return (f"resetkeys ~{prefix}:* resetchannels -@all +@read +@write +@connection +@transaction "
            f"+evalsha +eval +script|load +script|exists {_DENIED} {_CLUSTER}")


def reader_acl(prefix: str) -> str:
    """ACL rules for a reader (the consumer SDK's EmbeddingReader): read-only keys under ``prefix``,
    and CLUSTER SLOTS."""
    return f"resetkeys %R~{prefix}:* resetchannels -@all +@read +@connection {_DENIED} {_CLUSTER}"


def quote_config_value(value: str) -> str:
    """A value for redis.conf: double-quoted, with backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class AclUser:
    """A Redis ACL user: its name, password and rules (:func:`worker_acl`, :func:`reader_acl`)."""

    name: str
    password: str
    rules: str

    def __repr__(self) -> str:  # never print the password
        return f"AclUser(name={self.name!r}, rules={self.rules!r})"

    def config_line(self) -> str:
        digest = hashlib.sha256(self.password.encode()).hexdigest()
        return f"user {self.name} on #{digest} {self.rules}"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


class RedisService(Service):
    """The local redis-server. ``users``: ACL users besides the default one (whose password is
    STREAMREC_REDIS_PASSWORD, as ``requirepass``)."""

    name = "redis"
    marker = "redis-server"
    port_setting = "redis_port"

    def __init__(self, settings, users: tuple[AclUser, ...] = ()):
        super().__init__(settings)
        self.users = users

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise StackError("redis-server is not installed. Install it (Debian: apt-get install redis-server).")
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.dir / 'data'}",
            "appendonly yes",
            "appendfsync everysec",
            "daemonize no",
            "save \"\"",
        ]
        password = self.settings.redis_password.get_secret_value()
        if password:
            lines.append(f"requirepass {quote_config_value(password)}")
        lines += [user.config_line() for user in self.users]
        # In a 0600 file, not on the command line, so `ps` never shows it.
        write_private(conf, "\n".join(lines) + "\n")
        self.proc.start([exe, str(conf)])

    def healthy(self) -> bool:
        try:
            import redis

            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, **self.settings.redis_kwargs())
            return bool(client.ping())
        except Exception:
            return False
