"""Subcommands of ``streamrec`` for the learning core: ``evaluate``, ``tune``, ``bench``.

``stream/cli.py`` calls :func:`register` with its subparsers. Each command's
``func(args, settings=None) -> int`` returns an exit code. Standalone:
``python -m stream.evaluation.cli evaluate --dataset movielens-100k``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Callable

__all__ = ["register", "BENCH_TARGETS", "main"]

DATASETS = ["movielens-100k", "simulator"]


def _json_arg(text: str | None, option: str) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{option}: not JSON ({exc}): {text!r}")
    if not isinstance(value, dict):
        raise SystemExit(f"{option}: must be a JSON object of SegmentedRanker arguments, got {text!r}")
    return value


def _cmd_evaluate(args, settings=None) -> int:
    from stream.evaluation.run import evaluate, evaluate_segments
    from stream.models.config_io import load_model_config

    config = load_model_config(args.config) if args.config else None
    if args.segments:
        evaluate_segments(args.dataset, args.segments, limit=args.limit, k=args.k,
                          progress_every=args.progress_every, config=config,
                          rerank=_json_arg(args.rerank, "--rerank"), sim_events=args.sim_events, seed=args.seed,
                          max_segments=args.max_segments, min_users=args.min_users)
        return 0
    evaluate(args.dataset, limit=args.limit, k=args.k, progress_every=args.progress_every, config=config,
             sim_events=args.sim_events, seed=args.seed, baselines=not args.no_baselines,
             batch_size=args.batch_size)
    return 0


def _cmd_tune(args, settings=None) -> int:
    from stream.evaluation.run import load_events
    from stream.evaluation.tune import tune

    if args.space == "rerank" and not args.segments:
        raise SystemExit("tune --space rerank: give --segments (profile attributes, e.g. age,gender,occupation)")
    events, world = load_events(args.dataset, limit=args.prefix, sim_events=args.sim_events, seed=7)
    print(f"streamrec tune: {args.space} on the first {len(events):,} events of {args.dataset}, "
          f"{args.trials} trials ({args.sampler})", flush=True)
    command = " ".join(["streamrec"] + sys.argv[1:]) if sys.argv and "streamrec" in sys.argv[0] else None
    if args.space == "rerank":
        from stream.evaluation.tune_segments import tune_segments
        from stream.models.config_io import load_model_config

        config = load_model_config(args.config) if args.config else None
        params, report = tune_segments(events, args.dataset, args.segments, world=world, config=config,
                                       n_trials=args.trials, k=args.k, seed=args.seed, output=args.output,
                                       source={"dataset": args.dataset, "command": command}, min_z=args.min_z,
                                       max_segments=args.max_segments, min_users=args.min_users)
        print(report, flush=True)
        print(f"configuration written to {args.output}", flush=True)
        return 0
    params, value = tune(events, space=args.space, n_trials=args.trials, k=args.k, seed=args.seed,
                         sampler=args.sampler, output=args.output,
                         source={"dataset": args.dataset, "command": command})
    print(f"best recall@{args.k} on the prefix: {value:.4f}; configuration written to {args.output}", flush=True)
    return 0


def _bench_model(args) -> int:
    # a fresh interpreter, so the BLAS thread cap is in place before NumPy is imported
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "stream.evaluation.bench", "model", "--factors", str(args.factors)]
    if args.quick:
        cmd.append("--quick")
    return subprocess.call(cmd, env=env)


# target name -> runner; the pipeline benchmark registers here too
def _bench_pipeline(args) -> int:
    from stream.benchmark.pipeline import main_bench_pipeline
    from stream.config import Settings

    return main_bench_pipeline(Settings(), args)


BENCH_TARGETS: dict[str, Callable[[argparse.Namespace], int]] = {"model": _bench_model, "pipeline": _bench_pipeline}


def _cmd_bench(args, settings=None) -> int:
    return BENCH_TARGETS[args.target](args)


def _segment_options(parser) -> None:
    parser.add_argument("--max-segments", type=int, default=32, help="with --segments: at most N segments (32)")
    parser.add_argument("--min-users", type=int, default=20,
                        help="with --segments: users a profile segment needs, else it folds (20)")


def register(subparsers) -> None:
    """Add ``evaluate``, ``tune`` and ``bench`` to a ``streamrec`` argparse subparsers object."""
    ev = subparsers.add_parser("evaluate", help="prequential evaluation against baselines (docs/EVALUATION.md)")
    ev.add_argument("--dataset", choices=DATASETS, default="movielens-100k")
    ev.add_argument("--limit", type=int, default=None, help="only the first N events")
    ev.add_argument("--k", type=int, default=10, help="list length (default 10)")
    ev.add_argument("--progress-every", type=int, default=10_000, help="progress line to stderr every N events")
    ev.add_argument("--config", default=None, help="a model configuration JSON (from `streamrec tune`) to add")
    ev.add_argument("--sim-events", type=int, default=100_000, help="simulator events to generate (default 100000)")
    ev.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    ev.add_argument("--no-baselines", action="store_true", help="streamrec's models only")
    ev.add_argument("--batch-size", type=int, default=1,
                    help="streamrec's models learn in micro-batches of N events, as in the worker (default 1)")
    ev.add_argument("--segments", default=None,
                    help="global-only against segment-tuned per segment: comma-separated profile attributes "
                         "(movielens-100k: age,gender,occupation; simulator: segment (the true segments), "
                         "age_band, country), 'behaviour', or 'none' (one segment: the re-ranker alone); "
                         "the global model is --config's (default hybrid)")
    ev.add_argument("--rerank", default=None,
                    help="with --segments: SegmentedRanker arguments as a JSON object, "
                         "e.g. '{\"learning_rate\": 0.05}'")
    _segment_options(ev)
    ev.set_defaults(func=_cmd_evaluate)

    tu = subparsers.add_parser("tune", help="hyperparameter search over the prequential protocol")
    tu.add_argument("--dataset", choices=DATASETS, default="movielens-100k")
    tu.add_argument("--space", choices=["hybrid", "mf", "rerank"], default="hybrid",
                    help="rerank: the re-ranker's parameters per segment "
                         "(needs --segments; --config is the global model)")
    tu.add_argument("--trials", type=int, default=20)
    tu.add_argument("--prefix", type=int, default=30_000, help="events of the stream's start to tune on")
    tu.add_argument("--k", type=int, default=10)
    tu.add_argument("--seed", type=int, default=0)
    tu.add_argument("--sampler", choices=["random", "optuna"], default="random",
                    help="optuna needs the [tune] extra")
    tu.add_argument("--sim-events", type=int, default=100_000)
    tu.add_argument("--output", default="streamrec-model.json", help="where the best configuration goes")
    tu.add_argument("--segments", default=None, help="with --space rerank: the segments, as for evaluate --segments")
    tu.add_argument("--config", default=None, help="with --space rerank: the global model's configuration JSON")
    tu.add_argument("--min-z", type=float, default=2.0,
                    help="with --space rerank: a segment takes a setting only when its gain over the defaults "
                         "exceeds this many standard errors (2)")
    _segment_options(tu)
    tu.set_defaults(func=_cmd_tune)

    be = subparsers.add_parser("bench", help="benchmarks (docs/PERFORMANCE.md)")
    be.add_argument("target", choices=sorted(BENCH_TARGETS))
    be.add_argument("--quick", action="store_true", help="a short smoke run")
    be.add_argument("--factors", type=int, default=64, help="factor count measured besides 32 (model)")
    be.add_argument("--events", type=int, default=50_000, help="pre-filled events drained (pipeline)")
    be.add_argument("--rate", type=float, default=5_000.0, help="produce rate of the freshness phases, no-op agent and worker (pipeline)")
    be.add_argument("--seconds", type=float, default=20.0, help="length of each freshness phase (pipeline)")
    be.set_defaults(func=_cmd_bench)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.evaluation.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
