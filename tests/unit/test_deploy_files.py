"""docker-compose.yml, the Dockerfile, Prometheus rules and Grafana files: valid and consistent
with the code (there is no Docker engine here, so what can be checked without one is)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from stream.config import Settings
from tests.helpers import unavailable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service():
    assert set(COMPOSE["services"]) == {"kafka", "redis", "prometheus", "grafana", "worker", "simulator"}
    assert re.fullmatch(r"apache/kafka:4\.0\.\d+", COMPOSE["services"]["kafka"]["image"])
    env = COMPOSE["services"]["kafka"]["environment"]
    assert "broker,controller" == env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper


def test_every_mounted_file_exists():
    for name, svc in COMPOSE["services"].items():
        for volume in svc.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("./"):
                assert (ROOT / host).exists(), f"{name} mounts {host}, which does not exist"


def test_every_streamrec_variable_is_one_the_code_reads():
    fields = {f"STREAMREC_{n.upper()}" for n in Settings.model_fields}
    seen = set()
    for name, svc in COMPOSE["services"].items():
        for var in (svc.get("environment") or {}):
            if var.startswith("STREAMREC_"):
                seen.add(var)
                assert var in fields, f"{name} sets {var}, which no setting reads"
    assert {"STREAMREC_BOOTSTRAP_SERVERS", "STREAMREC_REDIS_URL", "STREAMREC_REDIS_PASSWORD"} <= seen


def test_dockerfile_copies_what_exists():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"


def test_prometheus_scrapes_the_worker_service():
    conf = yaml.safe_load((ROOT / "dashboards/prometheus/prometheus.yml").read_text())
    targets = conf["scrape_configs"][0]["static_configs"][0]["targets"]
    port = COMPOSE["services"]["worker"]["environment"]["STREAMREC_WEB_PORT"]
    assert targets == [f"worker:{port}"]


def test_grafana_dashboards_use_the_provisioned_datasource():
    ds = yaml.safe_load((ROOT / "dashboards/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    dashboards = list((ROOT / "dashboards/grafana/dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dash = json.loads(path.read_text())
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])
            assert all(t["expr"] for t in panel["targets"])


def _promtool():
    exe = shutil.which("promtool")
    if exe is None:
        unavailable("promtool (Debian's prometheus package) is not installed")
    return exe


def test_alert_rules_check_and_unit_tests_pass():
    promtool = _promtool()
    for args in (["check", "rules", *map(str, (ROOT / "dashboards/prometheus/rules").glob("*.yml"))],
                 ["test", "rules", *map(str, (ROOT / "dashboards/prometheus/tests").glob("*.yml"))]):
        proc = subprocess.run([promtool, *args], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_json_is_what_the_builder_makes():
    """dashboards/build_dashboards.py is the source; the committed JSON must match it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_dashboards", ROOT / "dashboards/build_dashboards.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for uid, (title, panels) in mod.DASHBOARDS.items():
        path = ROOT / "dashboards/grafana/dashboards" / (uid.removeprefix("streamrec-") + ".json")
        assert json.loads(path.read_text()) == mod.build(uid, title, panels), path.name
    names = {p.stem for p in (ROOT / "dashboards/grafana/dashboards").glob("*.json")}
    assert names == {"overview", "segments", "model-quality", "drift", "pipeline"}
