"""Pidfile-managed local processes: start detached, check, stop without leftovers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ManagedProcess", "Service", "StackError", "port_open", "free_port", "wait_worker_ready", "stop_child"]


class StackError(RuntimeError):
    """A local service could not be started, checked or stopped; the message says why and what to do."""


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_worker_ready(port: int, timeout: float, proc: subprocess.Popen | None = None,
                      headers: dict[str, str] | None = None) -> bool:
    """Wait until the worker on ``port`` owns partitions (its /health says ready); False when
    ``proc`` exits first or the time runs out. ``headers``: e.g. ``Settings.http_headers()``,
    for a worker whose /health asks for the token."""
    import json
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as resp:
                if json.loads(resp.read()).get("ready"):
                    return True
        except Exception:
            pass
        time.sleep(0.3)
    return False


def stop_child(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
    """Stop a child process (SIGTERM lets a worker drain and commit), SIGKILL after ``timeout``;
    returns its exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@dataclass
class ManagedProcess:
    """One service process, tracked by a pidfile in its run directory.

    ``marker`` must appear in the process's command line; it guards against a
    recycled pid belonging to some other program.
    """

    name: str
    run_dir: Path
    marker: str

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # A zombie (state Z) has exited already.
        if self.marker not in cmdline or stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    @staticmethod
    def _reap(pid: int) -> None:
        """Collect the exit status if the process is our child, so no zombie stays behind."""
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI that started it; Ctrl-C in the shell doesn't reach it
                env=env,
                cwd=self.run_dir,
            )
        self.pidfile.write_text(str(proc.pid))
        # Until the child has exec'd, /proc shows the parent's command line: wait for the marker.
        deadline = time.monotonic() + 10.0
        while self.pid() is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, wait, then SIGKILL. Returns True when a process was stopped."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running():
            self._reap(pid)
            time.sleep(0.2)
        if self.running():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(50):
                self._reap(pid)
                if not self.running():
                    break
                time.sleep(0.1)
        self._reap(pid)
        self.pidfile.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Service:
    """One local service: where its files live, its process, its port. Subclasses set
    ``name``, ``marker`` (a word of its command line) and ``port_setting``, and
    implement ``start()`` and ``healthy()``."""

    name: str
    marker: str
    port_setting: str

    def __init__(self, settings):
        self.settings = settings
        self.dir = settings.stack_path / self.name
        self.proc = ManagedProcess(self.name, self.dir, marker=self.marker)

    @property
    def port(self) -> int:
        return getattr(self.settings, self.port_setting)

    def start(self) -> None:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError
