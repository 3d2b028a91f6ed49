"""`streamrec`: the local stack, topics, the worker, the demo, and the model tools.

    streamrec stack up|down|status     Kafka (KRaft), Redis, Prometheus as local processes
    streamrec topics                   create streamrec's topics (idempotent)
    streamrec worker                   run a Faust worker (STREAMREC_* configure it)
    streamrec demo --duration 60       stack + simulator + worker, live progress, sample recommendations
    streamrec report --minutes 60      a PNG of segment KPIs and hit rate from Prometheus, drift marked
    streamrec evaluate|tune|bench      the learning core's tools (see docs/EVALUATION.md)
"""

from __future__ import annotations

import argparse
import os
import sys

# One BLAS thread unless the environment says otherwise, before NumPy is first imported (here, the
# worker's process, which inherits it, and the benchmarks): a second BLAS thread spins for work and
# takes the other core from the broker and Redis; the step's matrix products are small enough for one
# (`streamrec bench step` measured 161 against 215-333 µs an event with two, on the loaded machine).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from stream.config import Settings  # noqa: E402

__all__ = ["main", "build_parser"]


def _cmd_stack(args, settings: Settings) -> int:
    from stream.stack.manager import main_stack

    services = tuple(args.services.split(",")) if args.services else ("kafka", "redis", "prometheus")
    return main_stack(settings, args.action, services)


def _cmd_topics(args, settings: Settings) -> int:
    from stream.topics import ensure_topics

    created = ensure_topics(settings, quiet=True)
    print(f"{len(created)} topic(s) created" + (f": {', '.join(sorted(created))}" if created else " (all existed)"))
    return 0


def _cmd_worker(args, settings: Settings) -> int:
    from stream.preflight import ServiceError, check_kafka, check_redis
    from stream.topics import ensure_topics

    # A wrong password, CA or address ends here in one line, before Faust starts.
    try:
        check_kafka(settings)
        check_redis(settings)
    except ServiceError as exc:
        print(f"streamrec worker: {exc}", file=sys.stderr)
        return 2
    try:
        ensure_topics(settings, quiet=False)
    except Exception as exc:
        print(f"streamrec worker: cannot create or check the topics at {settings.bootstrap_servers}: {exc}. "
              "Start the local stack with `streamrec stack up`, or set STREAMREC_BOOTSTRAP_SERVERS.", file=sys.stderr)
        return 2
    if settings.model_config_path:
        from stream.models.config_io import load_model_config

        try:
            config = load_model_config(settings.model_config_path)
        except (OSError, ValueError) as exc:
            print(f"streamrec worker: STREAMREC_MODEL_CONFIG_PATH: {exc}", file=sys.stderr)
            return 2
        print(f"model configuration: {config['model']} from {settings.model_config_path}", file=sys.stderr)
    if settings.experiments_path:
        from stream.experiments.cli import check_experiments

        if check_experiments(settings, "streamrec worker: STREAMREC_EXPERIMENTS_PATH") != 0:
            return 2
    from stream.faustapp import worker_argv

    settings.datadir_path.mkdir(parents=True, exist_ok=True)
    argv = worker_argv(settings, "stream.app")
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached


def _cmd_demo(args, settings: Settings) -> int:
    from stream.demo import run_demo

    return run_demo(settings, duration=args.duration, rate=args.rate, keep_stack=args.keep_stack)


def _cmd_report(args, settings: Settings) -> int:
    from stream.report import main_report

    return main_report(settings, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec", description="streamrec: a streaming real-time recommender.",
                                     epilog="Every setting comes from STREAMREC_* variables; see README.md.")
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="local Kafka, Redis and Prometheus processes")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument("--services", default=None,
                       help="comma-separated subset of kafka,redis,prometheus (the default), or redis-cluster: "
                       "three Redis nodes in cluster mode (STREAMREC_REDIS_CLUSTER_PORT)")
    stack.set_defaults(func=_cmd_stack)

    topics = sub.add_parser("topics", help="create streamrec's topics")
    topics.set_defaults(func=_cmd_topics)

    worker = sub.add_parser("worker", help="run a Faust worker")
    worker.set_defaults(func=_cmd_worker)

    demo = sub.add_parser("demo", help="the whole thing, live, for a bounded time")
    demo.add_argument("--duration", type=float, default=60.0, help="seconds of simulated traffic (default 60)")
    demo.add_argument("--rate", type=float, default=300.0, help="simulated events per second (default 300)")
    demo.add_argument("--keep-stack", action="store_true", help="leave Kafka, Redis and Prometheus running")
    demo.set_defaults(func=_cmd_demo)

    report = sub.add_parser("report", help="a PNG of segment KPIs and hit rate over time, drift marked")
    report.add_argument("--minutes", type=float, default=60.0, help="how far back (default 60)")
    report.add_argument("--out", default="streamrec-report.png", help="the PNG to write")
    report.add_argument("--prometheus", default=None, help="Prometheus URL (default the local stack's)")
    report.set_defaults(func=_cmd_report)

    from stream.experiments.cli import register as register_experiments

    register_experiments(sub)
    try:
        from stream.evaluation.cli import register
    except ImportError:  # the learning core's tools are optional for the worker
        pass
    else:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args, Settings())


if __name__ == "__main__":
    sys.exit(main())
