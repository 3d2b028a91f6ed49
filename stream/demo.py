"""`streamrec demo`: the local stack, a simulator and a worker, live, for a bounded time.

It brings up what is not running yet, starts a worker and the simulator as child
processes, prints progress every two seconds (events/s, users and items seen,
lists pushed), then shows one user's recommendations as read back from the
recommendations topic and from HTTP, and stops what it started (Ctrl-C ends it
early, cleanly).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from stream.config import Settings
from stream.stack.process import stop_child, wait_worker_ready

__all__ = ["run_demo"]


def run_demo(settings: Settings, *, duration: float, rate: float, keep_stack: bool) -> int:
    from consumers.sdk import TopicReader
    from stream.stack import Stack, StackError
    from stream.state.keys import Keys
    from stream.state.stats import applied_total, read_stats
    from stream.topics import ensure_topics

    say = lambda msg: print(msg, flush=True)  # noqa: E731
    # A Redis prefix of its own: each demo starts from an empty model, and its counts are its own.
    settings = settings.model_copy(update={"redis_prefix": f"{settings.redis_prefix}:demo-{int(time.time())}"})
    stack = Stack(settings)
    was_running = {s.name for s in stack.status() if s.healthy}
    say(f"== streamrec demo: {duration:.0f} s of simulated traffic at {rate:.0f} events/s ==")
    try:
        stack.up(log=lambda m: say(f"  {m}"))
    except StackError as exc:
        print(f"streamrec demo: {exc}", file=sys.stderr)
        return 2
    ensure_topics(settings, quiet=True)
    log_dir = settings.stack_path / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = settings.as_env()
    worker_log = open(log_dir / "worker.log", "ab")
    worker = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], stdout=worker_log,
                              stderr=subprocess.STDOUT, env=env, start_new_session=True)
    simulator = None
    code = 0
    try:
        say(f"  worker: starting (pid {worker.pid}, http://127.0.0.1:{settings.web_port}, log {log_dir / 'worker.log'})")
        if not wait_worker_ready(settings.web_port, 90, worker, settings.http_headers()):
            print(f"streamrec demo: the worker did not become ready; see {log_dir / 'worker.log'}", file=sys.stderr)
            return 1
        say("  worker: ready")
        demo_started = time.time()
        sim_log = open(log_dir / "simulator.log", "ab")
        simulator = subprocess.Popen(
            [sys.executable, "-m", "producers", "simulate", "--rate", str(rate), "--duration", str(duration)],
            stdout=sim_log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        say(f"  simulator: publishing (pid {simulator.pid}, log {log_dir / 'simulator.log'})")
        client = settings.redis_client()
        keys = Keys(settings.redis_prefix)

        def applied() -> int:
            return applied_total(read_stats(client, keys))

        start_total, t0 = applied(), time.monotonic()
        last_total, last_t = start_total, t0
        while simulator.poll() is None:
            time.sleep(2.0)
            total, now = applied(), time.monotonic()
            say(f"  [{now - t0:5.0f} s] applied {total - start_total:>8,} events  "
                f"{(total - last_total) / (now - last_t):>7,.0f} ev/s  "
                f"users seen {client.pfcount(keys.hll_users):>6,}  items seen {client.pfcount(keys.hll_items):>5,}")
            last_total, last_t = total, now
        time.sleep(max(2.0, settings.rec_min_interval_seconds + 1.0))  # let the worker drain and push

        say("\n== a sample user's recommendations ==")
        # only lists this run pushed (the topic keeps earlier runs' too)
        latest = {user: msg for user, msg in TopicReader("recommendations", settings).latest_by_key().items()
                  if (msg.timestamp or 0) >= demo_started}
        if not latest:
            say("  no recommendations arrived on the topic: see the worker log")
            return 1
        user_id = max(latest, key=lambda u: (len(latest[u].json().get("items", [])), u))
        rec = latest[user_id].json()
        say(f"  from the recommendations topic ({settings.topic('recommendations')}), user {user_id}, "
            f"segment {rec['segment']}:")
        for item in rec["items"]:
            say(f"    {item['rank']:>2}. {item['item_id']}  score {item['score']:.3f}")
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/recommendations/{user_id}?k=5",
                                    timeout=5) as resp:
            http = json.loads(resp.read())
        say(f"  from HTTP GET /recommendations/{user_id}?k=5: {[i['item_id'] for i in http['items']]}")
        pushed = time.strftime("%H:%M:%S", time.localtime(rec["generated_at"]))
        say(f"  (the topic holds the list pushed at {pushed}, after this user's last event; HTTP ranks now, "
            "so later events of other users may have moved it)")
        say(f"  Prometheus: http://127.0.0.1:{settings.prometheus_port} (try streamrec_events_total); "
            f"Redis keys of this run: {settings.redis_prefix}:*")
    except KeyboardInterrupt:
        say("\ninterrupted: shutting down")
        code = 130
    finally:
        if simulator is not None:
            stop_child(simulator)
        stop_child(worker)
        say("  worker and simulator stopped")
        if not keep_stack:
            try:  # the demo's own Redis keys; with --keep-stack they stay for a look
                r = settings.redis_client()
                for key in r.scan_iter(f"{settings.redis_prefix}:*", count=1000):
                    r.delete(key)
            except Exception:
                pass
            started_here = tuple(s.name for s in stack.services if s.name not in was_running)
            if started_here:
                Stack(settings, started_here).down(log=lambda m: say(f"  {m}"))
    return code
