"""redis-server (Debian's package) as a local process with append-only persistence."""

from __future__ import annotations

import os
import shutil

from stream.stack.process import Service, StackError

__all__ = ["RedisService"]


class RedisService(Service):
    name = "redis"
    marker = "redis-server"
    port_setting = "redis_port"

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
            # In a 0600 file, not on the command line, so `ps` never shows it.
            lines.append(f"requirepass {password}")
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        self.proc.start([exe, str(conf)])

    def healthy(self) -> bool:
        try:
            import redis

            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, **self.settings.redis_kwargs())
            return bool(client.ping())
        except Exception:
            return False
