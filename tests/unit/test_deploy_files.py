"""docker-compose.yml, the Dockerfile, Prometheus rules and Grafana files: valid and consistent
with the code (there is no Docker engine here, so what can be checked without one is)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
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
    from stream.experiments.definition import load

    experiments = load(ROOT / "deploy/experiments.toml")  # the example experiments file's dashboards
    for e in experiments:
        path = ROOT / "dashboards/grafana/dashboards" / f"experiment-{e.name}.json"
        assert json.loads(path.read_text()) == mod.experiment_dashboard(e.name), path.name
    names = {p.stem for p in (ROOT / "dashboards/grafana/dashboards").glob("*.json")}
    assert names == {"overview", "segments", "model-quality", "drift", "pipeline"} | {
        f"experiment-{e.name}" for e in experiments}


# --- secrets: never on a command line -------------------------------------------------------

SECRET_VARIABLES = ("STREAMREC_REDIS_PASSWORD", "STREAMREC_KAFKA_SASL_PASSWORD", "STREAMREC_HTTP_TOKEN",
                    "STREAMREC_ID_KEY", "STREAMREC_ERASURE_KEY")


def _command_text(value) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")


def test_no_service_puts_a_secret_on_a_command_line():
    """A password flag or a secret variable in a command or entrypoint ends up in `ps`; the
    healthcheck may only hand the Redis password to redis-cli through REDISCLI_AUTH."""
    for name, svc in COMPOSE["services"].items():
        for part in ("command", "entrypoint"):
            text = _command_text(svc.get(part))
            assert not re.search(r"--requirepass|--pass\b|(^|\s)-a\s", text), (name, part, text)
            assert not any(var in text for var in SECRET_VARIABLES), (name, part, text)
        check = _command_text((svc.get("healthcheck") or {}).get("test"))
        assert not re.search(r"--requirepass|--pass\b|(^|\s)-a\s", check), (name, check)
        for var in SECRET_VARIABLES:
            for use in re.finditer(rf"\S*\$\$\{{?{var}", check):
                assert re.search(r"REDISCLI_AUTH=|\[ -z", check[max(0, use.start() - 20):use.end()]), (name, check)


def test_redis_starts_from_the_script_and_secrets_come_from_the_env_file():
    redis = COMPOSE["services"]["redis"]
    assert redis["command"] == ["sh", "/streamrec/start-redis.sh"]
    assert "./deploy/redis/start-redis.sh:/streamrec/start-redis.sh:ro" in redis["volumes"]
    header = (ROOT / "docker-compose.yml").read_text().split("services:")[0]
    assert "--env-file" in header and ".env" in header
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    for name in ("worker", "simulator"):
        for var in SECRET_VARIABLES:
            value = COMPOSE["services"][name]["environment"].get(var)
            assert value is None or value == f"${{{var}:-}}", (name, var, "a secret must come from the env file")
    assert "STREAMREC_ID_KEY" not in COMPOSE["services"]["worker"]["environment"], "the worker needs no id key"
    assert "STREAMREC_HTTP_TOKEN" in COMPOSE["services"]["worker"]["environment"]
    assert "STREAMREC_ERASURE_KEY" in COMPOSE["services"]["worker"]["environment"]


def test_the_redis_start_script_keeps_the_password_off_command_lines(tmp_path):
    """Runs deploy/redis/start-redis.sh as compose does (with Debian's redis-server on a free port)
    and the compose healthcheck against it: the password works, is asked for, and is written to
    a 0600 config file."""
    import os
    import time

    import redis

    from stream.stack.process import free_port, stop_child

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        unavailable("redis-server and redis-cli (Debian's redis-server package) are not installed")
    password = 'pw with "quotes", \\backslash and spaces ' + os.urandom(6).hex()
    port = free_port()
    conf = tmp_path / "redis.conf"
    env = {**os.environ, "STREAMREC_REDIS_PASSWORD": password, "REDIS_CONF": str(conf), "REDIS_PORT": str(port),
           "REDIS_DATA": str(tmp_path), "REDIS_BIND": "127.0.0.1"}
    proc = subprocess.Popen(["sh", str(ROOT / "deploy/redis/start-redis.sh")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2)
        deadline = time.monotonic() + 15
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
                time.sleep(0.1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping()
        assert conf.stat().st_mode & 0o777 == 0o600
        # (what redis-server was started with is checked below, with a stand-in: the real one
        # rewrites its /proc command line)
        assert b"redis-server" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        check = COMPOSE["services"]["redis"]["healthcheck"]["test"][1].replace("$$", "$")
        check = check.replace("redis-cli ping", f"redis-cli -p {port} ping")
        ok = subprocess.run(["sh", "-c", check], env={"PATH": os.environ["PATH"], "STREAMREC_REDIS_PASSWORD": password},
                            capture_output=True, text=True)
        assert ok.returncode == 0 and "PONG" in ok.stdout, ok.stdout + ok.stderr
        wrong = subprocess.run(["sh", "-c", check], env={"PATH": os.environ["PATH"], "STREAMREC_REDIS_PASSWORD": "x"},
                               capture_output=True, text=True)
        assert wrong.returncode != 0
    finally:
        stop_child(proc, timeout=10)


def test_acl_users_keep_their_password_out_of_the_config_and_reprs():
    import hashlib

    from stream.stack.redis import AclUser, quote_config_value, worker_acl

    user = AclUser("worker", "s3cret-pw", worker_acl("p"))
    assert "s3cret-pw" not in repr(user) and "s3cret-pw" not in user.config_line()
    assert user.config_line().startswith(f"user worker on #{hashlib.sha256(b's3cret-pw').hexdigest()} resetkeys ~p:* ")
    assert quote_config_value('a"b\\c d') == '"a\\"b\\\\c d"'


def test_the_redis_start_script_hands_redis_server_only_the_config_file(tmp_path):
    """What the script gives redis-server, seen by a stand-in that records its arguments and
    environment (the real redis-server rewrites both in /proc, so they cannot be read there):
    the config file's path, no password, and no STREAMREC_REDIS_PASSWORD in its environment."""
    import os

    fake = tmp_path / "bin" / "redis-server"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$OUT/argv"\nenv > "$OUT/env"\n')
    fake.chmod(0o755)
    password = "s3cret pw " + os.urandom(6).hex()
    conf = tmp_path / "redis.conf"
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "OUT": str(tmp_path), "STREAMREC_REDIS_PASSWORD": password,
           "REDIS_CONF": str(conf), "REDIS_DATA": str(tmp_path)}
    out = subprocess.run(["sh", str(ROOT / "deploy/redis/start-redis.sh")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "argv").read_text().split("\n")[0] == str(conf)
    assert password not in (tmp_path / "argv").read_text()
    assert password not in (tmp_path / "env").read_text() and "STREAMREC_REDIS_PASSWORD" not in (tmp_path / "env").read_text()
    assert f'requirepass "{password}"' in conf.read_text() and conf.stat().st_mode & 0o777 == 0o600
