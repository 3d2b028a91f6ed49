"""`streamrec stack up|down|status` on its own ports and data directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream.config import Settings
from tests.helpers import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _cli(settings, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "stream.cli", "stack", *args], capture_output=True, text=True,
                          env=settings.as_env(), cwd=ROOT, timeout=timeout)


def _pids(settings) -> list[int]:
    found = []
    for pidfile in Path(settings.stack_dir).glob("*/*.pid"):
        found.append(int(pidfile.read_text()))
    return found


def test_up_twice_is_a_noop_and_down_leaves_no_process(stack_settings, tmp_path):
    # stack_settings: the jars are cached and the binaries are there (or CI fails earlier).
    settings = Settings(kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
                        prometheus_port=free_port(), stack_dir=str(tmp_path / "stack"),
                        cache_dir=str(stack_settings.cache_path))
    first = _cli(settings, "up")
    assert first.returncode == 0, first.stderr + first.stdout
    pids = _pids(settings)
    assert len(pids) == 3
    try:
        second = _cli(settings, "up")
        assert second.returncode == 0
        assert second.stdout.count("already running") == 3
        assert _pids(settings) == pids
        status = _cli(settings, "status")
        assert status.returncode == 0 and status.stdout.count("healthy") == 3
    finally:
        down = _cli(settings, "down")
    assert down.returncode == 0, down.stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], pid
    status = _cli(settings, "status")
    assert status.returncode == 1 and status.stdout.count("stopped") == 3
