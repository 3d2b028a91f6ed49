"""The README's main job, `streamrec demo`, end to end on the test stack (a short run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_demo_shows_progress_and_a_users_recommendations_from_topic_and_http(isolated):
    out = subprocess.run([sys.executable, "-m", "stream.cli", "demo", "--duration", "8", "--rate", "200"],
                         env=isolated.as_env(), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "worker: ready" in text and "ev/s" in text and "users seen" in text
    assert "from the recommendations topic" in text and "from HTTP GET /recommendations/" in text
    assert " 1. i" in text  # a ranked list was printed
    assert "worker and simulator stopped" in text
