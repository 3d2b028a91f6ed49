"""`streamrec-produce`: publish events from the simulator, MovieLens-100K or a JSON-lines file.

    streamrec-produce simulate --rate 500 --duration 60 --seed 7
    streamrec-produce replay movielens-100k --speedup 100000
    streamrec-produce file events.jsonl            # each line {"type": "click", ...payload}; any type, purchases too
    streamrec-produce request --user u000042 --k 5 # ask for a list, print the answer
    streamrec-produce erase --user u000042 --wait  # erase a user, print the worker's reply
    streamrec-produce closed-loop --users 100 --rounds 10   # users shown what the worker serves

With STREAMREC_ID_KEY set, user ids and event ids go out as their pseudonyms (stream/pseudonyms.py).
A Kafka that cannot be used (unreachable, a refused login, a failed TLS handshake, a missing
password) ends the command with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from typing import Any, Iterable, Iterator

from stream.config import Settings
from stream.contract import EVENT_TYPES

__all__ = ["main", "build_parser", "publish", "publish_world"]


class _Progress:
    """One status line a second on stderr: sent, rate, delivered, failed."""

    def __init__(self, producer, quiet: bool, every: float = 1.0):
        self.producer = producer
        self.quiet = quiet
        self.every = every
        self.started = time.monotonic()
        self._last = self.started
        self._last_sent = 0

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < self.every):
            return
        st = self.producer.stats
        rate = (st.sent - self._last_sent) / max(now - self._last, 1e-9)
        print(
            f"[{now - self.started:7.1f} s] sent {st.sent:>9,}  {rate:>8,.0f} ev/s  "
            f"delivered {st.delivered:>9,}  failed {st.failed:,}",
            file=sys.stderr,
            flush=True,
        )
        self._last, self._last_sent = now, st.sent


def publish(
    producer,
    events: Iterable[tuple[str, dict[str, Any]]],
    *,
    rate: float | None = None,
    duration: float | None = None,
    quiet: bool = False,
    pace_by_ts: float | None = None,
) -> int:
    """Send ``(event_type, payload)`` pairs; paced by ``rate`` (events/s) or by event time
    divided by ``pace_by_ts`` (a speed-up factor); stops after ``duration`` seconds or on
    SIGINT/SIGTERM, and always flushes. Returns the number sent."""
    stop = {"now": False}

    def _stop(signum, frame):
        stop["now"] = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    progress = _Progress(producer, quiet)
    started = time.monotonic()
    first_ts: float | None = None
    sent = 0
    try:
        for etype, payload in events:
            if stop["now"] or (duration is not None and time.monotonic() - started >= duration):
                break
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            elif pace_by_ts:
                first_ts = payload["ts"] if first_ts is None else first_ts
                ahead = (payload["ts"] - first_ts) / pace_by_ts - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(min(ahead, 5.0))
            producer.send(etype, payload)
            sent += 1
            progress.tick()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        producer.flush()
        progress.tick(force=True)
    return sent


def _live(events: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Stamp simulated events with the wall clock: a live stream."""
    for etype, payload in events:
        payload["ts"] = round(time.time(), 3)
        yield etype, payload


def publish_world(producer, world, n_events: int | None, *, run_id: str, catalogue: bool = True,
                  rate: float | None = None, duration: float | None = None, quiet: bool = False) -> int:
    """The simulate path: the world's profiles and catalogue (unless ``catalogue`` is False), then
    ``n_events`` of its stream stamped with the wall clock, through :func:`publish`. Returns the
    number of stream events sent."""
    if catalogue:
        for etype, payload in world.setup(ts=time.time()):
            producer.send(etype, payload)
        producer.flush()
        if not quiet:
            print(f"published {len(world.user_ids)} user profiles and {len(world.item_ids)} items", file=sys.stderr)
    return publish(producer, _live(world.generate(n_events, run_id=run_id)), rate=rate, duration=duration, quiet=quiet)


def _world(args):
    from producers.simulator import World, WorldConfig

    return World(WorldConfig(n_users=args.users, n_items=args.items, n_segments=args.segments,
                             n_categories=args.categories, seed=args.seed, drift_at=args.drift_at,
                             drift_segment=args.drift_segment))


def _cmd_simulate(args, settings: Settings) -> int:
    from producers.sdk import EventProducer

    run_id = args.run_id or uuid.uuid4().hex[:10]
    with EventProducer(settings) as producer:
        n = publish_world(producer, _world(args), args.events, run_id=run_id, catalogue=not args.no_catalogue,
                          rate=args.rate, duration=args.duration, quiet=args.quiet)
    print(json.dumps({"sent": n, "run_id": run_id, "delivered": producer.stats.delivered}))
    return 0


def _cmd_replay(args, settings: Settings) -> int:
    from producers.replay import movielens_catalogue, movielens_profiles, movielens_stream
    from producers.sdk import EventProducer
    from stream.evaluation.datasets import movielens_100k_dir

    data_dir = movielens_100k_dir()
    with EventProducer(settings) as producer:
        for etype, payload in list(movielens_profiles(data_dir)) + list(movielens_catalogue(data_dir)):
            producer.send(etype, payload)
        producer.flush()
        n = publish(producer, movielens_stream(data_dir, limit=args.limit), pace_by_ts=args.speedup or None,
                    rate=args.rate, duration=args.duration, quiet=args.quiet)
    print(json.dumps({"sent": n, "delivered": producer.stats.delivered}))
    return 0


def _read_lines(path: str, default_type: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    fh = sys.stdin if path == "-" else open(path, encoding="utf-8")
    try:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{lineno}: not JSON ({exc.msg})")
            etype = obj.get("type") or default_type
            if not isinstance(obj, dict) or etype is None:
                raise SystemExit(f"{path}:{lineno}: needs a 'type' field ({', '.join(EVENT_TYPES)}) or --type")
            obj.pop("type", None)
            yield etype, obj
    finally:
        if fh is not sys.stdin:
            fh.close()


def _cmd_file(args, settings: Settings) -> int:
    from producers.sdk import EventProducer

    with EventProducer(settings) as producer:
        n = publish(producer, _read_lines(args.path, args.type), rate=args.rate, quiet=args.quiet)
    print(json.dumps({"sent": n, "delivered": producer.stats.delivered}))
    return 0


def _cmd_request(args, settings: Settings) -> int:
    from consumers.sdk import recommendations
    from producers.sdk import EventProducer

    with EventProducer(settings) as producer:
        request_id = producer.request_recommendations(args.user, args.k)
    if args.no_wait:
        print(json.dumps({"request_id": request_id}))
        return 0
    deadline = time.monotonic() + args.timeout
    for rec in recommendations(settings, user_id=args.user, follow=True, idle_timeout=args.timeout):
        if rec.get("request_id") == request_id:
            print(json.dumps(rec))
            return 0
        if time.monotonic() > deadline:
            break
    print(f"streamrec-produce: no answer to request {request_id} within {args.timeout:.0f} s "
          "(is a worker running?)", file=sys.stderr)
    return 1


def _cmd_erase(args, settings: Settings) -> int:
    from consumers.sdk import erasure_done
    from producers.sdk import EventProducer

    with EventProducer(settings) as producer:
        request_id = producer.erase(args.user, ts=args.ts)
    if not args.wait:
        print(json.dumps({"request_id": request_id}))
        return 0
    done = erasure_done(request_id, settings, timeout=args.timeout)
    if done is None:
        print(f"streamrec-produce: no reply to erasure request {request_id} within {args.timeout:.0f} s "
              "(is a worker running?)", file=sys.stderr)
        return 1
    print(json.dumps(done))
    return 0


def _cmd_closed_loop(args, settings: Settings) -> int:
    from consumers.answers import RequestAnswers
    from producers.closed_loop import ClosedLoop, LoopConfig, seed_stack
    from producers.response import ResponseModel
    from producers.sdk import EventProducer

    world = _world(args)
    config = LoopConfig(users=args.round_users, rounds=args.rounds, k=args.k, seed=args.loop_seed,
                        answer_timeout=args.answer_timeout, pause_seconds=args.pause,
                        run_id=args.run_id or uuid.uuid4().hex[:10])
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    with EventProducer(settings) as producer, RequestAnswers(settings) as answers:
        loop = ClosedLoop(world, producer, answers, config, ResponseModel(purchases=args.purchases), progress=say)
        if args.warmup_events or not args.no_catalogue:
            sent = seed_stack(world, producer, settings, warmup_events=args.warmup_events, run_id=f"{config.run_id}-w",
                              catalogue=not args.no_catalogue, wait_seconds=args.warmup_wait, quiet=args.quiet)
            say(f"seeded: {sent:,} warm-up events applied by the workers")
        summary = loop.run()
    if args.lists:
        with open(args.lists, "w", encoding="utf-8") as fh:
            for rec in loop.lists:
                fh.write(json.dumps(rec.__dict__) + "\n")
    print(json.dumps(summary))
    if summary["asked"] and summary["unanswered"] == summary["asked"]:
        print("streamrec-produce: no request was answered (is a worker running?)", file=sys.stderr)
        return 1
    return 0


def _world_arguments(p: argparse.ArgumentParser, users_flag: str) -> None:
    p.add_argument(users_flag, dest="users", type=int, default=2000, help="users in the world (default 2000)")
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--categories", type=int, default=8)
    p.add_argument("--seed", type=int, default=7, help="the world's seed (default 7)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec-produce", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="a synthetic world with segments, categories and true tastes")
    sim.add_argument("--rate", type=float, default=200.0, help="events per second (default 200; 0 = as fast as possible)")
    sim.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sim.add_argument("--events", type=int, default=None, help="stop after this many events")
    _world_arguments(sim, "--users")
    sim.add_argument("--run-id", default=None, help="event_id prefix (default: random, so runs never collide)")
    sim.add_argument("--no-catalogue", action="store_true", help="skip publishing profiles and items first")
    sim.add_argument("--drift-at", type=int, default=None,
                     help="inject drift: after this many events the tastes of --drift-segment rotate")
    sim.add_argument("--drift-segment", type=int, default=0, help="index of the segment that drifts (default 0)")
    sim.set_defaults(func=_cmd_simulate)

    rep = sub.add_parser("replay", help="replay a public data set as events")
    rep.add_argument("dataset", choices=["movielens-100k"])
    rep.add_argument("--speedup", type=float, default=0.0,
                     help="event time runs this many times faster than real time (default 0: as fast as possible)")
    rep.add_argument("--rate", type=float, default=None, help="or: a fixed rate in events per second")
    rep.add_argument("--limit", type=int, default=None, help="replay only the first N ratings")
    rep.add_argument("--duration", type=float, default=None)
    rep.set_defaults(func=_cmd_replay)

    fil = sub.add_parser("file", help="publish JSON lines ('-' for stdin)")
    fil.add_argument("path")
    fil.add_argument("--type", default=None, help="event type of lines without a 'type' field")
    fil.add_argument("--rate", type=float, default=None)
    fil.set_defaults(func=_cmd_file)

    req = sub.add_parser("request", help="ask the worker for a user's list (rec-requests) and print the answer")
    req.add_argument("--user", required=True)
    req.add_argument("--k", type=int, default=10)
    req.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    req.add_argument("--no-wait", action="store_true", help="send only; print the request_id")
    req.set_defaults(func=_cmd_request)

    era = sub.add_parser("erase", help="erase a user: their state in Redis, their profile on the users topic "
                                       "(user-erasures); with --wait, print the worker's reply")
    era.add_argument("--user", required=True, help="the user id (with STREAMREC_ID_KEY set, sent as its pseudonym)")
    era.add_argument("--ts", type=float, default=None,
                     help="the erasure's event time, epoch seconds (default now): the user's events up to it never "
                          "count again, later ones start a new user")
    era.add_argument("--wait", action="store_true", help="wait for the reply on user-erasures.done and print it")
    era.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply")
    era.set_defaults(func=_cmd_erase)

    loop = sub.add_parser("closed-loop", help="simulated users shown the lists the worker serves (rec-requests), "
                                              "clicking, dwelling, skipping and buying from the world's true tastes")
    loop.add_argument("--users", dest="round_users", type=int, default=100, help="users a round (default 100)")
    loop.add_argument("--rounds", type=int, default=10)
    loop.add_argument("--k", type=int, default=10, help="length of the lists asked for (default 10)")
    loop.add_argument("--loop-seed", type=int, default=0, help="seed of the users' draw and their responses")
    _world_arguments(loop, "--world-users")
    loop.add_argument("--warmup-events", type=int, default=20_000,
                      help="events of the open stream published first, so the worker has models (default 20,000)")
    loop.add_argument("--warmup-wait", type=float, default=300.0,
                      help="seconds to wait for the workers to apply the warm-up (0: do not wait)")
    loop.add_argument("--no-catalogue", action="store_true", help="skip publishing profiles and items first")
    loop.add_argument("--answer-timeout", type=float, default=30.0,
                      help="seconds a round waits for its answers; later ones are counted unanswered")
    loop.add_argument("--pause", type=float, default=0.0, help="seconds between rounds")
    loop.add_argument("--no-purchases", dest="purchases", action="store_false",
                      help="draw no purchases (for a worker whose contract predates the purchase event)")
    loop.add_argument("--run-id", default=None, help="request and event id prefix (default: random)")
    loop.add_argument("--lists", default=None, help="write every list shown and what was done with it, as JSON lines")
    loop.set_defaults(func=_cmd_closed_loop, drift_at=None, drift_segment=0)

    for p in (sim, rep, fil, loop):
        p.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    from producers.sdk import DeliveryError
    from stream.contract import InvalidEvent
    from stream.preflight import ServiceError, check_kafka

    args = build_parser().parse_args(argv)
    if getattr(args, "rate", None) == 0:
        args.rate = None
    settings = Settings()
    try:
        check_kafka(settings)
    except ServiceError as exc:
        print(f"streamrec-produce: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings)
    except InvalidEvent as exc:
        print(f"streamrec-produce: invalid event ({exc.reason}): {exc}", file=sys.stderr)
        return 2
    except (DeliveryError, ServiceError) as exc:
        print(f"streamrec-produce: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
