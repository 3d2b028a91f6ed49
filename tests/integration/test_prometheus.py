"""A real Prometheus scrapes a real worker during a simulated run: every PromQL expression of
every dashboard panel returns data, and every metric every alert rule reads has data (a rule's
own expression returns data only while it fires, so its inputs are what can be checked)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from producers.sdk import EventProducer
from stream.stack.prometheus import register_scrape_target, unregister_scrape_target
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _query(settings, expr: str) -> dict:
    url = f"http://127.0.0.1:{settings.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "dashboards/grafana/dashboards").glob("*.json")):
        if path.name.startswith("experiment-"):  # an experiment's: tests/integration/test_experiments.py
            continue
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
    return out


def _rules() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "dashboards/prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("alert") or rule.get("record"), rule["expr"]))
    return out


def test_every_dashboard_and_rule_expression_has_data(isolated, worker_factory, tmp_path):
    worker = worker_factory(isolated).start()
    name = f"test-{isolated.app_id}"
    register_scrape_target(isolated, name, f"127.0.0.1:{isolated.web_port}")
    try:
        wait_for(lambda: _query(isolated, f'up{{worker="{name}"}} == 1')["data"]["result"], 60,
                 "Prometheus scraping the test worker")
        with EventProducer(isolated, validate=False) as producer:  # some bad messages for the dead-letter panels
            producer.send_raw("clicks", b"u1", b"not json")
            producer.send_raw("dwell", b"u2", b"{}")
        sim = subprocess.run(
            [sys.executable, "-m", "producers", "simulate", "--rate", "300", "--duration", "25", "--users", "300",
             "--items", "100", "--quiet"], env=isolated.as_env(), cwd=ROOT, capture_output=True, text=True,
            timeout=120)
        assert sim.returncode == 0, sim.stderr
        for _ in range(5):
            urllib.request.urlopen(f"{worker.url}/recommendations/u000001?k=5", timeout=5).read()

        exprs = _dashboard_exprs()
        assert exprs, "no dashboard expressions found"

        def missing() -> list[str]:
            return [where for where, expr in exprs if not _query(isolated, expr)["data"]["result"]]

        deadline = time.monotonic() + 60
        still = missing()
        while still and time.monotonic() < deadline:  # rate() needs two scrapes in its window
            time.sleep(2)
            still = missing()
        assert not still, f"no data for: {still}"

        for alert, expr in _rules():
            answer = _query(isolated, expr)
            assert answer["status"] == "success", (alert, answer)
            for metric in sorted(set(re.findall(r"\b(streamrec_[a-z0-9_]+|up)\b", expr))):
                result = _query(isolated, f"count({metric})")["data"]["result"]
                assert result, f"alert {alert}: metric {metric} has no data"

        # The report command draws from the same Prometheus: a real PNG with every panel's data.
        out = tmp_path / "report.png"
        rep = subprocess.run([sys.executable, "-m", "stream.cli", "report", "--minutes", "5", "--out", str(out)],
                             env=isolated.as_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert rep.returncode == 0, rep.stderr
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
        assert not re.search(r"\(0 series", rep.stdout), rep.stdout
    finally:
        unregister_scrape_target(isolated, name)
