"""``streamrec experiment check|report``: check an experiments file; report an experiment.

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


def register(sub) -> None:
    """Add ``experiment`` to the ``streamrec`` parser's subcommands."""
    exp = sub.add_parser("experiment", help="check an experiments file; report an experiment's results")
    actions = exp.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="check an experiments file (default STREAMREC_EXPERIMENTS_PATH)")
    check.add_argument("file", nargs="?", default=None)
    check.set_defaults(func=_cmd_check)
