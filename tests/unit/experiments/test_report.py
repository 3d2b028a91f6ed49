"""The report's outputs: text table, JSON-ready dict, PNG, and import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stream.experiments.report import analyse, render_png, render_text
from stream.experiments.stats import METRICS, ExperimentData, VariantData
from tests.unit.experiments.simulate import experiment, variant_columns


@pytest.fixture(scope="module")
def analysed():
    return analyse(experiment(3, 8000, ctrs=(0.10, 0.12), currency="SEK"), 50)


def test_text_report_shows_every_kpi_the_comparison_srm_and_the_decision(analysed):
    report, _ = analysed
    text = render_text(report)
    for metric in METRICS.values():
        assert metric.label in text
    assert "revenue per list (SEK)" in text
    assert f"better after {report.decided_after_users} users" in text
    assert f"decision: winner: treatment after {report.decided_after_users} users" in text
    assert f"p={report.srm.p_value:.3g} (ok, threshold 0.001)" in text
    control_ctr = report.variants[0].kpis["list_ctr"]
    assert f"{control_ctr.estimate:.4g} [{control_ctr.ci_low:.4g}, {control_ctr.ci_high:.4g}]" in text


def test_as_dict_is_strict_json_with_the_decision_and_the_srm_fields(analysed):
    report, _ = analysed
    out = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert out["winner"] == "treatment" and out["decided_after_users"] == report.decided_after_users
    assert out["srm"]["alarm"] is False and out["srm"]["observed"] == list(report.srm.observed)
    assert out["variants"][1]["kpis"]["list_ctr"]["estimate"] == report.variants[1].kpis["list_ctr"].estimate
    assert out["comparisons"][0]["verdict"] == "better"


def test_png_is_written(analysed, tmp_path):
    report, history = analysed
    path = render_png(report, history, tmp_path / "experiment.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_png_without_matplotlib_says_how_to_install_it(analysed, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'streamrec\[report\]'"):
        render_png(*analysed, tmp_path / "x.png")


def test_an_experiment_without_data_yet_reports_nothing_decided(tmp_path):
    empty = {name: np.zeros(0) for name in variant_columns(np.random.default_rng(0), 0, 0.1)}
    data = ExperimentData("fresh", (VariantData("a", 0.5, 0, **empty), VariantData("b", 0.5, 0, **empty)))
    report, history = analyse(data)
    assert report.decision == "no winner yet" and not report.srm.alarm
    assert "n/a" in render_text(report)
    json.dumps(report.as_dict(), allow_nan=False)
    assert render_png(report, history, tmp_path / "empty.png").exists()


def test_importing_the_package_stays_light():
    code = ("import sys, stream.experiments; "
            "print(sorted(m for m in ('numpy', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
