"""``streamrec experiment check|report|simulate``: check an experiments file; report an experiment;
run one against the simulator's ground truth (:mod:`stream.experiments.simulate`).

``check [FILE]`` reads the file (default STREAMREC_EXPERIMENTS_PATH) and builds every variant's
engine configuration, so a file the worker would refuse is refused here first, with the same
message. ``report NAME`` reads the experiment's per-user counters and assignment counts from
Redis (:mod:`stream.experiments.state`), records the look, and prints the per-variant KPIs, the
sequential test's decision and the sample-ratio check (:mod:`stream.experiments.stats`); it
draws a PNG with ``--png``.
"""

from __future__ import annotations

import sys

__all__ = ["register", "check_experiments"]


def check_experiments(settings, where: str, path: str | None = None) -> int:
    """0 when the experiments file is valid and its variants can be served; else prints why, 2."""
    from stream.engine.config import EngineConfig
    from stream.experiments.definition import ExperimentError, load, variant_config
    from stream.models.config_io import load_model_config

    path = path or settings.experiments_path
    try:
        experiments = load(path)
        model = load_model_config(settings.model_config_path) if settings.model_config_path else None
        config = EngineConfig.from_settings(settings, model)
        for e in experiments:
            for v in e.variants:
                variant_config(config, v, f"{path}: experiment {e.name!r}, ")
    except (ExperimentError, OSError, ValueError) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    for e in experiments:
        shares = ", ".join(f"{v.name} {v.share:g}" for v in e.variants)
        print(f"experiment {e.name}: segments {', '.join(e.segments)}; variants {shares} (control {e.control}); "
              f"primary {e.primary}, alpha {e.alpha:g}", file=sys.stderr)
    return 0


def _cmd_check(args, settings) -> int:
    path = args.file or settings.experiments_path
    if not path:
        print("streamrec experiment check: no file: give one, or set STREAMREC_EXPERIMENTS_PATH", file=sys.stderr)
        return 2
    return check_experiments(settings, "streamrec experiment check", path)


def _cmd_simulate(args, settings) -> int:
    from stream.experiments.simulate import main_simulate

    return main_simulate(args, settings)


def register(sub) -> None:
    """Add ``experiment`` to the ``streamrec`` parser's subcommands."""
    exp = sub.add_parser("experiment", help="check an experiments file; report an experiment's results")
    actions = exp.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="check an experiments file (default STREAMREC_EXPERIMENTS_PATH)")
    check.add_argument("file", nargs="?", default=None)
    check.set_defaults(func=_cmd_check)
    report = actions.add_parser("report", help="per-variant KPIs with intervals, the sequential test's decision "
                                "and the sample-ratio check, from the worker's Redis (each run is a look)")
    report.add_argument("name", help="the experiment's name in STREAMREC_EXPERIMENTS_PATH")
    report.add_argument("--currency", default="EUR", help="the currency revenue is reported in (default EUR)")
    report.add_argument("--look-every", type=int, default=50, help="replay a look every N users (default 50)")
    report.add_argument("--png", default=None, help="also draw the report into this PNG")
    report.add_argument("--json", action="store_true", help="print JSON instead of the table")
    report.set_defaults(func=_cmd_report)
    sim = actions.add_parser("simulate", help="run an experiment against the simulator's ground truth: seed a world, "
                             "show its users what the running worker serves (the closed loop), look after each round")
    sim.add_argument("name", help="the experiment's name in STREAMREC_EXPERIMENTS_PATH (the worker's)")
    sim.add_argument("--users", type=int, default=200, help="users shown a list per round (default 200)")
    sim.add_argument("--rounds", type=int, default=30, help="at most this many rounds (default 30)")
    sim.add_argument("--warmup", type=int, default=20_000, help="open-stream events before the loop (default 20,000)")
    sim.add_argument("--world-users", type=int, default=2000, help="users in the world (default 2,000)")
    sim.add_argument("--world-items", type=int, default=500, help="items in the world (default 500)")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--look-every", type=int, default=50, help="the report's replayed looks (default every 50 users)")
    sim.add_argument("--png", default=None, help="draw the last look's report into this PNG")
    sim.add_argument("--all-rounds", action="store_true", help="run every round, even after a decision")
    sim.set_defaults(func=_cmd_simulate)


async def collect(experiment, state, currency: str):
    """An experiment's :class:`~stream.experiments.stats.ExperimentData` from the state: every
    exposed user's counters per variant, in assignment order (all variants on one clock), and the
    assignment counts. Revenue in ``currency`` only."""
    import numpy as np

    from stream.experiments.attribution import decode_counters
    from stream.experiments.stats import ExperimentData, VariantData

    assigned = await state.assigned(experiment.name)
    variants = []
    for v in experiment.variants:
        users = sorted((decode_counters(raw) for raw in await state.counters(experiment.name, v.name)),
                       key=lambda c: c.at)
        users = [c for c in users if c.shown]  # exposed users: a list of theirs was shown
        col = lambda f: np.array([f(c) for c in users], dtype=np.float64)  # noqa: E731
        variants.append(VariantData(
            v.name, v.share, max(int(assigned.get(v.name, 0)), len(users)), shown=col(lambda c: c.shown),
            clicked=col(lambda c: c.clicked), clicks=col(lambda c: c.clicks), purchases=col(lambda c: c.purchases),
            converted=col(lambda c: c.converted), revenue=col(lambda c: c.revenue.get(currency, 0.0)),
            dwell_seconds=col(lambda c: c.dwell_s), dwell_events=col(lambda c: c.dwell_n), skips=col(lambda c: c.skips)))
    return ExperimentData(experiment.name, tuple(variants), alpha=experiment.alpha, primary=experiment.primary,
                          currency=currency)


async def report_experiment(experiment, state, *, currency: str = "EUR", look_every: int = 50, png: str | None = None,
                            now: float | None = None):
    """Analyse one experiment from the state, remember the look, draw the PNG; (report, history)."""
    import json
    import time

    from stream.experiments.report import analyse, render_png

    data = await collect(experiment, state, currency)
    report, history = analyse(data, look_every=look_every)
    look = {"at": time.time() if now is None else now, "users": sum(v.users for v in data.variants),
            "assigned": {v.name: v.assigned for v in data.variants}, "decision": report.decision}
    await state.add_look(experiment.name, json.dumps(look, separators=(",", ":")).encode())
    if png:
        render_png(report, history, png)
    return report, history


def named_experiment(settings, name: str, command: str):
    """The experiment ``name`` of STREAMREC_EXPERIMENTS_PATH; None (after saying why) when there is none."""
    from stream.experiments.definition import ExperimentError, load

    if not settings.experiments_path:
        print(f"{command}: set STREAMREC_EXPERIMENTS_PATH to the worker's experiments file", file=sys.stderr)
        return None
    try:
        experiments = {e.name: e for e in load(settings.experiments_path)}
    except ExperimentError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return None
    if name not in experiments:
        print(f"{command}: no experiment {name!r} in {settings.experiments_path} "
              f"(it has {sorted(experiments) or 'none'})", file=sys.stderr)
        return None
    return experiments[name]


def report_from_redis(settings, experiment, **kwargs):
    """:func:`report_experiment` over the worker's Redis (STREAMREC_REDIS_*): (report, history)."""
    import asyncio

    from stream.experiments.state import RedisExperiments
    from stream.state.keys import Keys
    from stream.state.redis import RedisState

    async def run():
        client = settings.redis_client(asyncio=True)
        state = RedisState(client, Keys(settings.redis_prefix), n_factors=1,
                           erasure_key=settings.erasure_key.get_secret_value().encode() or None)
        try:
            return await report_experiment(experiment, RedisExperiments.beside(state), **kwargs)
        finally:
            await client.aclose()

    return asyncio.run(run())


def _cmd_report(args, settings) -> int:
    import json

    from stream.experiments.report import render_text

    experiment = named_experiment(settings, args.name, "streamrec experiment report")
    if experiment is None:
        return 2
    try:
        report, _ = report_from_redis(settings, experiment, currency=args.currency, look_every=args.look_every,
                                      png=args.png)
    except (OSError, ConnectionError) as exc:
        print(f"streamrec experiment report: cannot read the experiment from Redis at {settings.redis_url}: {exc}",
              file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if args.json else render_text(report))
    if args.png:
        print(f"wrote {args.png}", file=sys.stderr)
    return 0
