"""The subcommands registered into `streamrec` (evaluate, tune, bench) on small streams, and the
benchmark functions at toy sizes."""

import argparse
import json

import pytest

from stream.evaluation import bench
from stream.evaluation.cli import BENCH_TARGETS, register
from stream.models.config_io import hybrid_params, load_model_config


def _parser():
    parser = argparse.ArgumentParser(prog="streamrec")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args, None)


@pytest.fixture()
def events_file(tmp_path):
    """A contract JSON-lines file: two profiles, a catalogue, and clicks of two taste groups."""
    path = tmp_path / "events.jsonl"
    lines = [{"type": "user", "event_id": f"p{u}", "user_id": f"u{u}", "ts": 0.0, "schema": "v1",
              "attributes": {"plan": "pro" if u % 2 else "free"}} for u in range(8)]
    lines += [{"type": "item", "event_id": f"c{i}", "item_id": f"i{i}", "ts": 0.0, "schema": "v1",
               "categories": ["even" if i % 2 == 0 else "odd"], "created_at": 0.0} for i in range(12)]
    for n in range(400):
        u = n % 8
        lines.append({"type": "click", "event_id": f"e{n}", "user_id": f"u{u}", "item_id": f"i{(2 * n + u) % 12}",
                      "ts": float(n), "schema": "v1"})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_register_adds_evaluate_tune_and_bench_with_funcs():
    parser = _parser()
    args = parser.parse_args(["evaluate", "--dataset", "simulator", "--limit", "10"])
    assert callable(args.func) and args.dataset == "simulator" and args.limit == 10
    args = parser.parse_args(["tune", "--trials", "2"])
    assert (args.trials, args.dataset, args.prefix, args.batch_size, args.space) == (2, "movielens-100k", 30_000,
                                                                                     100, "hybrid")
    args = parser.parse_args(["tune", "--dataset", "some/file.jsonl", "--batch-size", "7", "--space", "rerank",
                              "--segments", "age_band,gender"])
    assert (args.dataset, args.batch_size, args.segments) == ("some/file.jsonl", 7, "age_band,gender")
    args = parser.parse_args(["bench", "model", "--quick"])
    assert args.target == "model" and args.quick and callable(args.func)
    assert list(BENCH_TARGETS) == ["model", "pipeline", "step", "faust"]
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "nothing"])


def test_evaluate_runs_end_to_end_on_a_file_of_contract_events(events_file, capsys):
    assert _run(["evaluate", "--dataset", str(events_file), "--progress-every", "0"]) == 0
    out = capsys.readouterr().out
    assert "| streamrec-hybrid (the blend alone) |" in out and "| river-funkmf-k32 |" in out
    assert "best streamrec" in out


def test_tune_on_a_file_writes_the_best_blend_of_its_prefix(events_file, tmp_path, capsys):
    out = tmp_path / "best.json"
    assert _run(["tune", "--dataset", str(events_file), "--prefix", "300", "--batch-size", "20", "--trials", "2",
                 "--space", "hybrid", "--output", str(out)]) == 0
    config = load_model_config(out)
    assert config["model"] == "HybridRanker"
    assert config["source"]["prefix_events"] == 300 and config["source"]["batch_size"] == 20
    assert config["source"]["dataset"] == str(events_file)
    hybrid_params(config)  # the engine takes it
    printed = capsys.readouterr().out
    assert "on the first 300 events" in printed and f"{config['source']['value']:.4f}" in printed


def test_tune_mf_on_the_simulator_writes_an_online_mf_configuration(tmp_path):
    out = tmp_path / "mf.json"
    assert _run(["tune", "--dataset", "simulator", "--sim-events", "1500", "--prefix", "1000", "--space", "mf",
                 "--trials", "2", "--output", str(out)]) == 0
    config = load_model_config(out)
    assert config["model"] == "OnlineMF" and "n_factors" in config["params"]
    assert config["source"]["prefix_events"] == 1000


def test_tune_rerank_on_profile_attributes_of_the_file(events_file, tmp_path, capsys):
    out = tmp_path / "segmented.json"
    assert _run(["tune", "--dataset", str(events_file), "--space", "rerank", "--segments", "plan", "--min-users", "2",
                 "--trials", "2", "--batch-size", "20", "--output", str(out)]) == 0
    config = load_model_config(out)
    assert config["model"] == "SegmentedRanker"
    assert set(config["source"]["per_segment"]) == {"plan:free", "plan:pro"}
    assert config["source"]["segmenter"]["combinations"] == ["plan:free", "plan:pro"]
    assert "| plan:pro |" in capsys.readouterr().out


def test_tune_errors_say_what_is_missing(events_file):
    with pytest.raises(SystemExit, match="give --segments"):
        _run(["tune", "--dataset", "simulator", "--space", "rerank", "--trials", "1"])
    with pytest.raises(SystemExit, match="'nowhere.jsonl': not one of"):
        _run(["tune", "--dataset", "nowhere.jsonl", "--trials", "1"])
    with pytest.raises(SystemExit, match=r"no attribute \['age_band'\]; they have \['plan'\]"):
        _run(["tune", "--dataset", str(events_file), "--space", "rerank", "--segments", "age_band", "--trials", "1"])


def test_bench_functions_at_toy_sizes():
    learning = bench.bench_learning(n_factors=8, n_events=2000, batch_size=256, river_events=200)
    assert learning["mf_events_per_s"] > 0 and learning["ratio"] > 0
    topk = bench.bench_topk(n_items=2000, n_factors=8, n_queries=20)
    assert 0 < topk["p50_ms"] <= topk["p99_ms"]
