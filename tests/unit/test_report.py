"""The report's drawing and drift marks, on fixed series (Prometheus itself is in the integration test)."""

from __future__ import annotations

from stream.report import drift_marks, render


def test_drift_marks_are_the_steps_to_active():
    series = [{"metric": {"segment": "students", "signal": "ctr"},
               "values": [[100, "0"], [110, "1"], [120, "1"], [130, "0"], [140, "1"]]},
              {"metric": {"segment": "gamers", "signal": "dwell"}, "values": [[100, "1"]]}]
    assert drift_marks(series) == [(100.0, "gamers/dwell"), (110.0, "students/ctr"), (140.0, "students/ctr")]


def test_render_writes_a_png_even_with_an_empty_panel(tmp_path):
    series = [{"metric": {"segment": "a"}, "values": [[1_700_000_000 + 10 * k, str(0.1 * (k % 5))] for k in range(30)]}]
    out = render([("CTR", series), ("Skip rate", [])], [(1_700_000_150.0, "a/ctr")], tmp_path / "r.png", "test")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000
