"""`streamrec evaluate --segments` and `streamrec tune --space rerank` on tiny simulator streams."""

import argparse

import pytest

from stream.evaluation.cli import register
from stream.evaluation.segments import SegmentCounts, SegmentReport, format_segment_tables
from stream.models.config_io import load_model_config


def _parser():
    parser = argparse.ArgumentParser(prog="streamrec")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args, None)


def test_evaluate_segments_reports_every_segment_of_the_simulator(capsys):
    assert _run(["evaluate", "--dataset", "simulator", "--sim-events", "3000", "--segments", "segment",
                 "--progress-every", "0", "--rerank", '{"n_candidates": 30}']) == 0
    out = capsys.readouterr().out
    assert "| global-only (the global model) |" in out and "segment-tuned (served, guarded)" in out
    for name in ("commuters", "night-owls", "weekenders", "students"):
        assert f"| segment:{name} |" in out
    assert "segments worse beyond noise:" in out


def test_evaluate_behaviour_segments_names_them_and_counts_moves(capsys):
    assert _run(["evaluate", "--dataset", "simulator", "--sim-events", "4000", "--limit", "1500",
                 "--segments", "behaviour", "--progress-every", "0"]) == 0
    out = capsys.readouterr().out
    assert "| behaviour-" in out and "dwell" in out and "purity" in out


def test_evaluate_segments_rejects_unknown_attributes():
    with pytest.raises(ValueError, match="no attribute \\['zodiac'\\]"):
        _run(["evaluate", "--dataset", "simulator", "--sim-events", "500", "--segments", "zodiac",
              "--progress-every", "0"])


def test_tune_rerank_writes_a_per_segment_configuration(tmp_path, capsys):
    out = tmp_path / "segmented.json"
    assert _run(["tune", "--dataset", "simulator", "--sim-events", "3000", "--prefix", "1500", "--space", "rerank",
                 "--segments", "segment", "--trials", "2", "--output", str(out)]) == 0
    config = load_model_config(out)
    assert config["model"] == "SegmentedRanker"
    segments = set(config["source"]["per_segment"])
    assert segments == {"segment:commuters", "segment:night-owls", "segment:weekenders", "segment:students"}
    assert set(config["params"]["segment_params"] or {}) <= segments
    assert config["source"]["segmenter"]["attributes"] == ["segment"]
    assert "| segment:students |" in capsys.readouterr().out
    # the written configuration is what evaluate --config runs
    assert _run(["evaluate", "--dataset", "simulator", "--sim-events", "1000", "--segments", "segment",
                 "--config", str(out), "--progress-every", "0"]) == 0


def test_tune_rerank_needs_segments():
    with pytest.raises(SystemExit, match="give --segments"):
        _run(["tune", "--dataset", "simulator", "--space", "rerank", "--trials", "1"])


def test_a_segment_worse_beyond_noise_is_flagged():
    worse, fine = SegmentCounts(), SegmentCounts()
    for n in range(200):
        worse.add({"served": n % 10 == 0, "global": n % 4 == 0, "segment": False, "shared": False})
        fine.add({"served": n % 4 == 0, "global": n % 4 == 0, "segment": False, "shared": False})
    report = SegmentReport(10, fine, {"a": worse, "b": fine}, [], 200, 1.0)
    assert report.worse_beyond_noise() == ["a"]
    text = format_segment_tables(report)
    assert "| a | 200 | 0.2500 | 0.1000 | -0.1500 worse |" in text and "segments worse beyond noise: a" in text
