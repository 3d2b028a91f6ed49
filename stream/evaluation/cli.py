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


def _lambda(text: str) -> float:
    from stream.models.diversity import check_lambda

    try:
        return check_lambda(float(text), "--diversity")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_evaluate(args, settings=None) -> int:
    from stream.evaluation.streams import load_stream
    from stream.models.config_io import load_model_config

    config = load_model_config(args.config) if args.config else None
    try:
        stream = load_stream(args.dataset, limit=args.limit, sim_events=args.sim_events, seed=args.seed)
    except ValueError as exc:
        raise SystemExit(f"streamrec evaluate: {exc}")
    if args.through_worker:
        from stream.config import Settings
        from stream.evaluation.through_worker import through_worker

        result = through_worker(settings or Settings(), stream, rate=args.rate, k=args.k, model_config=config)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(result.to_json() + "\n")
        return 0
    if args.segments:
        from stream.evaluation.segments import evaluate_segments

        evaluate_segments(stream, args.segments, k=args.k, progress_every=args.progress_every, config=config,
                          rerank=_json_arg(args.rerank, "--rerank"), batch_size=args.batch_size,
                          max_segments=args.max_segments, min_users=args.min_users)
        return 0
    from stream.evaluation.run import evaluate

    evaluate(args.dataset, k=args.k, progress_every=args.progress_every, config=config,
             baselines=not args.no_baselines, batch_size=args.batch_size, stream=stream, diversity=args.diversity,
             json_path=args.json)
    return 0


def _cmd_tune(args, settings=None) -> int:
    from stream.evaluation.streams import load_stream
    from stream.models.config_io import load_model_config

    if args.space == "rerank" and not args.segments:
        raise SystemExit("tune --space rerank: give --segments (profile attributes of the stream's profiles, "
                         "e.g. age_band,gender,occupation for movielens-100k)")
    try:
        stream = load_stream(args.dataset, limit=args.prefix, sim_events=args.sim_events, seed=7)
    except ValueError as exc:
        raise SystemExit(f"streamrec tune: {exc}")
    sampler = "random" if args.space == "rerank" else args.sampler  # per-segment tuning is random search
    print(f"streamrec tune: {args.space} on the first {len(stream.events()):,} events of {stream.name}, "
          f"{args.trials} trials ({sampler}), micro-batches of {args.batch_size}", flush=True)
    command = " ".join(["streamrec"] + sys.argv[1:]) if sys.argv and "streamrec" in sys.argv[0] else None
    source = {"dataset": stream.name, "command": command}
    # progress goes to sys.stderr as it is now: a parameter's default is the one at import
    if args.space == "rerank":
        from stream.evaluation.tune_segments import tune_segments

        config = load_model_config(args.config) if args.config else None
        try:
            params, report = tune_segments(stream, args.segments, config=config, n_trials=args.trials, k=args.k,
                                           seed=args.seed, min_z=args.min_z, output=args.output, source=source,
                                           max_segments=args.max_segments, min_users=args.min_users,
                                           batch_size=args.batch_size, progress=sys.stderr)
        except ValueError as exc:
            raise SystemExit(f"streamrec tune: {exc}")
        print(report, flush=True)
        print(f"configuration written to {args.output}", flush=True)
        return 0
    from stream.evaluation.tune import tune

    params, value = tune(stream, space=args.space, n_trials=args.trials, k=args.k, seed=args.seed,
                         sampler=args.sampler, output=args.output, source=source, batch_size=args.batch_size,
                         progress=sys.stderr)
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

    if args.events is None:
        args.events = 100_000  # long enough that the no-op agent's fast first seconds do not make (a)
    return main_bench_pipeline(Settings(), args)


def _bench_step(args) -> int:
    from stream.benchmark.step import main_bench_step
    from stream.config import Settings

    if args.events is None:
        args.events = 20_000
    return main_bench_step(Settings(), args)


def _bench_faust(args) -> int:
    from stream.benchmark.faust_path import main_bench_faust

    results = main_bench_faust(args.events or 100_000, args.runs, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(results, indent=2))
    return 0


BENCH_TARGETS: dict[str, Callable[[argparse.Namespace], int]] = {"model": _bench_model, "pipeline": _bench_pipeline,
                                                                 "step": _bench_step, "faust": _bench_faust}


def _cmd_bench(args, settings=None) -> int:
    return BENCH_TARGETS[args.target](args)


def _segment_options(parser) -> None:
    parser.add_argument("--max-segments", type=int, default=32, help="with --segments: at most N segments (32)")
    parser.add_argument("--min-users", type=int, default=20,
                        help="with --segments: users a profile segment needs, else it folds (20)")


def register(subparsers) -> None:
    """Add ``evaluate``, ``tune`` and ``bench`` to a ``streamrec`` argparse subparsers object."""
    ev = subparsers.add_parser("evaluate", help="prequential evaluation against baselines (docs/EVALUATION.md)")
    ev.add_argument("--dataset", default="movielens-100k",
                    help=f"{' or '.join(DATASETS)}, or a file of contract events as JSON lines (each with a \"type\": "
                         "click, dwell, skip, impression, user or item)")
    ev.add_argument("--limit", type=int, default=None, help="only the first N interaction events")
    ev.add_argument("--k", type=int, default=10, help="list length (default 10)")
    ev.add_argument("--progress-every", type=int, default=10_000, help="progress line to stderr every N events")
    ev.add_argument("--config", default=None, help="a model configuration JSON (from `streamrec tune`) to add")
    ev.add_argument("--sim-events", type=int, default=100_000, help="simulator events to generate (default 100000)")
    ev.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    ev.add_argument("--no-baselines", action="store_true", help="streamrec's rows only")
    ev.add_argument("--batch-size", type=int, default=100,
                    help="micro-batch size, as the worker learns (default 100; the user side is updated event "
                         "by event within a batch either way)")
    ev.add_argument("--through-worker", action="store_true",
                    help="replay the events through a real worker on the local stack and print what it served "
                         "next to the offline engine and popularity on the worker's own batches")
    ev.add_argument("--rate", type=float, default=1000.0,
                    help="with --through-worker: events per second produced (0: as fast as it goes; default 1000)")
    ev.add_argument("--json", default=None, help="also write the figures to this JSON file (the prequential run, "
                                                 "or with --through-worker its figures)")
    ev.add_argument("--diversity", type=_lambda, default=0.0, metavar="λ",
                    help="MMR weight λ in [0, 1] of every streamrec row (engine option `diversity`, the worker's "
                         "STREAMREC_DIVERSITY_LAMBDA); 0, the default, is pure relevance")
    ev.add_argument("--segments", default=None,
                    help="per segment, the blend against the segment re-rankers: comma-separated profile "
                         "attributes (movielens-100k: age_band,gender,occupation; simulator: segment (the true "
                         "segments), age_band, country), 'behaviour', or 'none' (one segment)")
    ev.add_argument("--rerank", default=None,
                    help="with --segments: re-ranker parameters as a JSON object, e.g. '{\"learning_rate\": 0.05}'")
    _segment_options(ev)
    ev.set_defaults(func=_cmd_evaluate)

    tu = subparsers.add_parser("tune", help="hyperparameter search over the prequential protocol")
    tu.add_argument("--dataset", default="movielens-100k",
                    help=f"{' or '.join(DATASETS)}, or a file of contract events as JSON lines (as for evaluate)")
    tu.add_argument("--space", choices=["hybrid", "mf", "rerank"], default="hybrid",
                    help="hybrid: the blend; mf: MF alone; rerank: the re-ranker's parameters per segment "
                         "(needs --segments; --config is the blend and the re-ranker's defaults)")
    tu.add_argument("--trials", type=int, default=20, help="trials, the first the defaults (20)")
    tu.add_argument("--prefix", type=int, default=30_000, help="interaction events of the stream's start to tune on "
                                                             "(30000)")
    tu.add_argument("--batch-size", type=int, default=100, help="micro-batch size, as the worker learns (100)")
    tu.add_argument("--k", type=int, default=10)
    tu.add_argument("--seed", type=int, default=0, help="seed of the search (the simulator's is 7)")
    tu.add_argument("--sampler", choices=["random", "optuna"], default="random",
                    help="optuna needs the [tune] extra (not used by --space rerank: random)")
    tu.add_argument("--sim-events", type=int, default=100_000, help="simulator events to generate (default 100000)")
    tu.add_argument("--output", default="streamrec-model.json", help="where the best configuration goes")
    tu.add_argument("--segments", default=None,
                    help="with --space rerank: comma-separated profile attributes of the stream's profiles "
                         "(movielens-100k: age_band,gender,occupation; simulator: segment, age_band, country)")
    tu.add_argument("--config", default=None,
                    help="with --space rerank: a model configuration JSON (the blend, the re-ranker's defaults)")
    tu.add_argument("--min-z", type=float, default=2.0,
                    help="with --space rerank: a segment takes a setting only when its gain over the defaults "
                         "exceeds this many standard errors (2)")
    _segment_options(tu)
    tu.set_defaults(func=_cmd_tune)

    be = subparsers.add_parser("bench", help="benchmarks (docs/PERFORMANCE.md)")
    be.add_argument("target", choices=sorted(BENCH_TARGETS))
    be.add_argument("--quick", action="store_true", help="a short smoke run")
    be.add_argument("--factors", type=int, default=64, help="factor count measured besides 32 (model)")
    be.add_argument("--events", type=int, default=None,
                    help="pre-filled events drained (pipeline, default 100000); events timed per run (step, default 20000); "
                         "messages per run (faust, default 100000)")
    be.add_argument("--warmup", type=int, default=50_000, help="events applied before timing (step)")
    be.add_argument("--runs", type=int, default=3, help="timed runs; the figures are their medians (step, faust)")
    be.add_argument("--json", default=None, help="also write the figures to this JSON file (step)")
    be.add_argument("--dataset", default=None, choices=("simulator", "movielens-100k"),
                    help="events of the step bench (default: the simulator's world of 20,000 users and 10,000 items; "
                         "movielens-100k: its ratings in order)")
    be.add_argument("--rate", type=float, default=5_000.0, help="produce rate of the freshness phases, no-op agent and worker (pipeline)")
    be.add_argument("--seconds", type=float, default=20.0, help="length of each freshness phase (pipeline)")
    be.add_argument("--workers", type=int, default=1,
                    help="worker processes in one consumer group, and as many no-op processes (pipeline, default 1)")
    be.set_defaults(func=_cmd_bench)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.evaluation.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
