"""An experiment run against the simulator's ground truth: ``streamrec experiment simulate NAME``.

A worker serves the experiment (STREAMREC_EXPERIMENTS_PATH); this seeds a simulated world into
the stack (profiles, catalogue, an open-stream warm-up), then runs the closed loop
(:mod:`producers.closed_loop`): each round, users are shown the lists the worker serves them and
respond from the world's true affinity. After each round, once the worker has applied the
round's events, the report looks (:func:`stream.experiments.cli.report_experiment`), as an
analyst reading it every day would. It stops at the first decision (or after ``--rounds``).

The world decides which variant is truly better: the expected clicks of every list shown (the
response model's own probabilities, without the draw's noise) per variant. The run prints both,
so a winner can be checked against the truth.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

__all__ = ["SimulatedRun", "run_simulation"]


@dataclass
class SimulatedRun:
    looks: list[dict]  # per round: users, lists, the report's decision
    decision: str
    winner: str | None
    decided_after_users: int | None
    truth: dict[str, dict]  # variant -> the world's figures (expected clicks per list, mean affinity, ...)
    summary: dict


def run_simulation(settings, experiment, *, users: int, rounds: int, warmup: int, world_users: int,
                   world_items: int, seed: int, look_every: int = 50, png: str | None = None,
                   until_decided: bool = True, log=print) -> SimulatedRun:
    """Seed, then loop and look until a decision (see the module docstring)."""
    from consumers.answers import RequestAnswers, worker_lag
    from producers.closed_loop import ClosedLoop, LoopConfig, seed_stack
    from producers.response import ResponseModel
    from producers.sdk import EventProducer
    from producers.simulator import World, WorldConfig
    from stream.experiments.cli import report_from_redis

    world = World(WorldConfig(n_users=world_users, n_items=world_items, seed=seed))

    def look(final_png: str | None):
        return report_from_redis(settings, experiment, look_every=look_every, png=final_png)

    def drained(timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while worker_lag(settings) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not apply the round's events within {timeout:.0f} s")
            time.sleep(0.5)

    looks: list[dict] = []
    report = None
    started = time.monotonic()
    with EventProducer(settings) as producer, RequestAnswers(settings) as answers:
        log(f"seeding: {world_users:,} users, {world_items:,} items, {warmup:,} warm-up events (seed {seed})")
        seed_stack(world, producer, settings, warmup_events=warmup, run_id=f"exp{seed}-warm", wait_seconds=600.0)
        loop = ClosedLoop(world, producer, answers, LoopConfig(users=users, rounds=1, seed=seed, run_id=f"exp{seed}"),
                          ResponseModel(purchases=True))
        for r in range(rounds):
            loop.run_round(r)
            drained()
            report, _ = look(None)
            exposed = sum(v.users for v in report.variants)
            line = {"round": r + 1, "lists": len(loop.lists), "exposed_users": exposed,
                    "assigned": {v.name: v.assigned for v in report.variants}, "decision": report.decision,
                    "seconds": round(time.monotonic() - started, 1)}
            looks.append(line)
            log(json.dumps(line))
            if until_decided and report.winner is not None:
                break
        if png:
            report, _ = look(png)
        summary = loop.summary()
    truth = {key.split("/", 1)[1]: {k: fig[k] for k in ("users", "lists", "clicks_per_list", "expected_clicks_per_list",
                                                        "mean_affinity", "purchases", "revenue")}
             for key, fig in summary["by_variant"].items() if key.startswith(f"{experiment.name}/")}
    return SimulatedRun(looks, report.decision, report.winner, report.decided_after_users, truth, summary)


def main_simulate(args, settings) -> int:
    """``streamrec experiment simulate``."""
    from stream.experiments.cli import named_experiment

    experiment = named_experiment(settings, args.name, "streamrec experiment simulate")
    if experiment is None:
        return 2
    run = run_simulation(settings, experiment, users=args.users, rounds=args.rounds, warmup=args.warmup,
                         world_users=args.world_users, world_items=args.world_items, seed=args.seed,
                         look_every=args.look_every, png=args.png, until_decided=not args.all_rounds,
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    truth = run.truth
    best = max(truth, key=lambda v: truth[v]["expected_clicks_per_list"] or 0.0) if truth else None
    print(json.dumps({"decision": run.decision, "winner": run.winner, "decided_after_users": run.decided_after_users,
                      "higher_expected_clicks": best, "truth": truth, "looks": len(run.looks)}, indent=2))
    return 0
