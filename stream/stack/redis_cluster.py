"""A local Redis Cluster of three primaries (redis-server processes, no replicas), for trying and
testing streamrec on a cluster (STREAMREC_REDIS_CLUSTER): ``streamrec stack up --services
redis-cluster``.

The nodes listen on STREAMREC_REDIS_CLUSTER_PORT and the two ports after it, each with its own
directory, append-only file and ``nodes.conf``. The first start splits the 16,384 slots in three
ranges and introduces the nodes to each other (CLUSTER ADDSLOTSRANGE, CLUSTER MEET, from Python:
no password on a command line); a restart finds the cluster in the nodes' ``nodes.conf`` again.
STREAMREC_REDIS_PASSWORD, when set, is each node's ``requirepass`` and ``masterauth``, in a 0600
config file as for the single Redis (:mod:`stream.stack.redis`), with the ACL users asked for.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from stream.stack.process import ManagedProcess, Service, StackError
from stream.stack.redis import AclUser, quote_config_value, write_private

__all__ = ["RedisClusterService", "SLOTS", "slot_ranges"]

SLOTS = 16384
NODES = 3


def slot_ranges(nodes: int = NODES) -> list[tuple[int, int]]:
    """The slots each node serves (first, last), as even as they split.

    >>> slot_ranges(3)
    [(0, 5460), (5461, 10922), (10923, 16383)]
    """
    bounds = [round(i * SLOTS / nodes) for i in range(nodes + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(nodes)]


class _Nodes:
    """The nodes' processes, seen by the stack as one: running when all run."""

    def __init__(self, procs: list[ManagedProcess]) -> None:
        self.procs = procs

    @property
    def logfile(self) -> Path:
        return self.procs[0].logfile

    def pid(self) -> int | None:
        pids = [p.pid() for p in self.procs]
        return pids[0] if all(pids) else None

    def running(self) -> bool:
        return self.pid() is not None

    def stop(self, timeout: float = 30.0) -> bool:
        stopped = [p.stop(timeout) for p in self.procs]
        return any(stopped)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"[{p.run_dir.name}] {p.log_tail(lines)}" for p in self.procs)


class RedisClusterService(Service):
    """Three redis-server processes in cluster mode, their slots assigned (see the module docstring).
    ``users``: ACL users on every node besides the default one."""

    name = "redis-cluster"
    marker = "redis-server"
    port_setting = "redis_cluster_port"

    def __init__(self, settings, users: tuple[AclUser, ...] = ()) -> None:
        super().__init__(settings)
        self.users = users
        self.ports = [self.port + i for i in range(NODES)]
        self.proc = _Nodes([ManagedProcess(f"node-{port}", self.dir / f"node-{port}", marker=self.marker)
                            for port in self.ports])

    def _client(self, port: int):
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, **self.settings.redis_kwargs())

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise StackError("redis-server is not installed. Install it (Debian: apt-get install redis-server).")
        password = self.settings.redis_password.get_secret_value()
        for port, proc in zip(self.ports, self.proc.procs):
            if proc.running():
                continue
            (proc.run_dir / "data").mkdir(parents=True, exist_ok=True)
            lines = [f"port {port}", "bind 127.0.0.1", f"dir {proc.run_dir / 'data'}", "cluster-enabled yes",
                     "cluster-config-file nodes.conf", "cluster-node-timeout 5000", "appendonly yes",
                     "appendfsync everysec", "daemonize no", 'save ""']
            if password:  # the nodes ask each other with it too
                lines += [f"requirepass {quote_config_value(password)}", f"masterauth {quote_config_value(password)}"]
            lines += [user.config_line() for user in self.users]
            conf = proc.run_dir / "redis.conf"
            write_private(conf, "\n".join(lines) + "\n")
            proc.start([exe, str(conf)])
        self._form()

    def _form(self, timeout: float = 10.0) -> None:
        """Assign the slots and introduce the nodes, unless they form a cluster already."""
        deadline = time.monotonic() + timeout
        clients = [self._client(port) for port in self.ports]
        while True:
            try:
                infos = [c.cluster("INFO") for c in clients]
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise StackError(f"the cluster's nodes did not answer within {timeout:.0f} s ({exc})") from None
                time.sleep(0.2)
        if all(int(_info(i).get("cluster_slots_assigned", 0)) == 0 for i in infos):
            for client, (first, last) in zip(clients, slot_ranges(len(clients))):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for port in self.ports[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        for c in clients:
            c.close()

    def healthy(self) -> bool:
        """Every node sees the cluster as ok, knows all the nodes and has all the slots assigned. One
        node's view is not enough: after a start the others can still answer CLUSTERDOWN for a while,
        and a client is sent to whichever node holds its slot."""
        return all(self._node_ok(port) for port in self.ports)

    def _node_ok(self, port: int) -> bool:
        try:
            client = self._client(port)
            try:
                info = _info(client.cluster("INFO"))
            finally:
                client.close()
        except Exception:
            return False
        return (info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == NODES
                and int(info.get("cluster_slots_ok", 0)) == SLOTS)


def _info(raw) -> dict[str, str]:
    """CLUSTER INFO's fields (redis-py gives a dict, or the text)."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)
