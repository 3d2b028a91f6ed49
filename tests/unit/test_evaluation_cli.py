"""The subcommands registered into `streamrec`, and the benchmark functions at toy sizes."""

import argparse

import pytest

from stream.evaluation import bench
from stream.evaluation.cli import BENCH_TARGETS, register


def _parser():
    parser = argparse.ArgumentParser(prog="streamrec")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_register_adds_evaluate_tune_and_bench_with_funcs():
    parser = _parser()
    args = parser.parse_args(["evaluate", "--dataset", "simulator", "--limit", "10"])
    assert callable(args.func) and args.dataset == "simulator" and args.limit == 10
    assert parser.parse_args(["tune", "--trials", "2"]).trials == 2
    args = parser.parse_args(["bench", "model", "--quick"])
    assert args.target == "model" and args.quick and callable(args.func)
    assert list(BENCH_TARGETS) == ["model", "pipeline"]
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "nothing"])


def test_evaluate_runs_end_to_end_on_a_tiny_stream(monkeypatch, capsys):
    from stream.evaluation import run
    from stream.evaluation.datasets import EvalEvent

    events = [EvalEvent(f"u{n % 7}", f"i{n % 11}", 1.0, float(n), True) for n in range(150)]
    monkeypatch.setattr(run, "load_events", lambda *a, **k: (events, None))
    args = _parser().parse_args(["evaluate", "--progress-every", "0"])
    assert args.func(args, None) == 0
    out = capsys.readouterr().out
    assert "| streamrec-hybrid |" in out and "| river-funkmf-k32 |" in out and "best streamrec" in out


def test_bench_functions_at_toy_sizes():
    learning = bench.bench_learning(n_factors=8, n_events=2000, batch_size=256, river_events=200)
    assert learning["mf_events_per_s"] > 0 and learning["ratio"] > 0
    topk = bench.bench_topk(n_items=2000, n_factors=8, n_queries=20)
    assert 0 < topk["p50_ms"] <= topk["p99_ms"]
