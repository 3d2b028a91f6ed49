"""Prometheus (Debian's package) scraping the worker, with streamrec's alert rules loaded."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from stream.config import Settings
from stream.stack.process import Service, StackError

__all__ = ["PrometheusService", "dashboards_dir", "render_local_config", "register_scrape_target",
           "unregister_scrape_target"]


def dashboards_dir() -> Path:
    """The repository's dashboards/ folder (streamrec runs from a checkout or an editable install)."""
    return Path(__file__).resolve().parents[2] / "dashboards"


def _targets_dir(settings: Settings) -> Path:
    return settings.stack_path / "prometheus" / "targets"


def register_scrape_target(settings: Settings, name: str, host_port: str) -> Path:
    """Make the local Prometheus scrape one more worker (file-based discovery, picked up in seconds)."""
    import json

    folder = _targets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [host_port], "labels": {"worker": name}}]))
    tmp.replace(path)  # atomic: Prometheus never reads half a file
    return path


def unregister_scrape_target(settings: Settings, name: str) -> None:
    (_targets_dir(settings) / f"{name}.json").unlink(missing_ok=True)


def render_local_config(settings: Settings) -> str:
    """Prometheus config for the local stack: the same jobs as dashboards/prometheus/prometheus.yml,
    with local targets (STREAMREC_PROMETHEUS_TARGETS, plus any registered with
    :func:`register_scrape_target`) and absolute rule paths."""
    targets = ", ".join(f"'{t.strip()}'" for t in settings.prometheus_targets.split(",") if t.strip())
    rules = dashboards_dir() / "prometheus" / "rules"
    return (
        "global:\n"
        "  scrape_interval: 5s\n"
        "  evaluation_interval: 5s\n"
        "rule_files:\n"
        f"  - '{rules}/*.yml'\n"
        "scrape_configs:\n"
        "  - job_name: streamrec-worker\n"
        "    metrics_path: /metrics\n"
        "    static_configs:\n"
        f"      - targets: [{targets}]\n"
        "    file_sd_configs:\n"
        f"      - files: ['{_targets_dir(settings)}/*.json']\n"
        "        refresh_interval: 5s\n"
    )


class PrometheusService(Service):
    name = "prometheus"
    marker = "prometheus"
    port_setting = "prometheus_port"

    def start(self) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            raise StackError("prometheus is not installed. Install it (Debian: apt-get install prometheus).")
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        _targets_dir(self.settings).mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        config.write_text(render_local_config(self.settings))
        self.proc.start(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=7d",
            ]
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except Exception:
            return False
