"""An experiment on the real stack: a worker serving two variants, simulated users shown what it
served (the closed loop), attribution counting their clicks and purchases against the list's
variant and position, the report, and the experiment's dashboard checked against Prometheus.

The loop knows exactly what each user did with each list; the worker only sees the events. So
every count the worker attributed (per variant, per position, per user) must equal the loop's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumers.answers import RequestAnswers
from producers.closed_loop import ClosedLoop, LoopConfig, seed_stack
from producers.response import ResponseModel
from producers.sdk import EventProducer
from producers.simulator import World, WorldConfig
from stream.experiments.assign import pick
from stream.experiments.attribution import decode_counters
from stream.experiments.definition import load
from stream.stack.prometheus import register_scrape_target, unregister_scrape_target
from tests.helpers import experiment_toml, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

EXPERIMENTS = experiment_toml("blend", ("hybrid", "mf-only"),
                              overrides="cooccurrence_weight = 0.0, popularity_weight = 0.0, segment_models = false")


def _samples(url: str) -> dict[str, list]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def _by(samples, name: str, *labels: str) -> Counter:
    got: Counter = Counter()
    for s in samples.get(name, []):
        if s.labels.get("experiment") == "blend":
            got[tuple(s.labels[k] for k in labels)] += s.value
    return got


def _query(settings, expr: str) -> dict:
    url = f"http://127.0.0.1:{settings.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_clicks_and_purchases_are_counted_against_the_lists_variant_and_position(isolated, worker_factory, tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(EXPERIMENTS)
    experiment = load(path)[0]
    settings = isolated.model_copy(update={"experiments_path": str(path)})
    worker = worker_factory(settings).start()
    world = World(WorldConfig(n_users=200, n_items=120, n_segments=3, n_categories=4, seed=9))
    with EventProducer(settings) as producer, RequestAnswers(settings) as answers:
        seed_stack(world, producer, settings, warmup_events=2000, run_id="warm", wait_seconds=60.0)
        loop = ClosedLoop(world, producer, answers, LoopConfig(users=40, rounds=3, seed=3, answer_timeout=20.0,
                                                               run_id="ab"), ResponseModel(purchases=True))
        summary = loop.run()
    assert summary["unanswered"] == 0 and summary["lists"] >= 100 and summary["clicks"] > 0, summary
    assert summary["purchases"] > 0, summary  # the world must buy something for this test to mean anything

    # every list names the experiment and the user's drawn variant
    want: dict[str, Counter] = {k: Counter() for k in ("shown", "clicked", "converted", "purchases")}
    clicks_at: Counter = Counter()
    revenue: Counter = Counter()
    for rec in loop.lists:
        assert rec.experiment == "blend" and rec.variant == pick(experiment, rec.user_id), rec
        v = (rec.variant,)
        want["shown"][v] += 1
        want["clicked"][v] += bool(rec.clicks)
        want["converted"][v] += bool(rec.purchases)
        want["purchases"][v] += len(rec.purchases)
        revenue[(rec.variant, "EUR")] += rec.revenue
        for rank in rec.clicks:
            clicks_at[(rec.variant, str(rank))] += 1
    assert len(want["shown"]) == 2  # both variants served

    def counted():
        s = _samples(worker.url)
        return s if sum(_by(s, "streamrec_lists_shown_total", "variant").values()) >= summary["lists"] and \
            sum(_by(s, "streamrec_list_clicks_total", "variant").values()) >= summary["clicks"] else None

    samples = wait_for(counted, 60, "the loop's events attributed")
    assert _by(samples, "streamrec_lists_shown_total", "variant") == want["shown"]
    assert _by(samples, "streamrec_lists_clicked_total", "variant") == +want["clicked"]
    assert _by(samples, "streamrec_lists_converted_total", "variant") == +want["converted"]
    assert _by(samples, "streamrec_list_purchases_total", "variant") == +want["purchases"]
    assert _by(samples, "streamrec_list_clicks_total", "variant", "position") == clicks_at
    got_revenue = _by(samples, "streamrec_list_revenue_total", "variant", "currency")
    assert set(got_revenue) == set(+revenue) and all(abs(got_revenue[k] - revenue[k]) < 0.05 for k in revenue)
    # the warm-up's open-loop events name lists the simulator made up (unknown_list); nothing else is unmatched
    unmatched = {s.labels["reason"] for s in samples.get("streamrec_attribution_unmatched_total", []) if s.value}
    assert unmatched <= {"unknown_list"}, unmatched

    # per user, in the state the report reads: what each user did, in their variant
    import redis

    from stream.state.tokens import Tokens

    client = redis.Redis.from_url(settings.redis_url)
    tokens = Tokens(client.get(f"{settings.redis_prefix}:erasure:key"))
    for uid, row in loop.per_user().items():
        (variant,) = {v for _, v in row["variants"]}
        raw = client.hget(f"{settings.redis_prefix}:exp:blend:users:{variant}", tokens.user(uid))
        c = decode_counters(raw)
        assert (c.shown, c.clicks, c.purchases) == (row["lists"], row["clicks"], row["purchases"]), uid
        assert abs(c.revenue.get("EUR", 0.0) - row["revenue"]) < 0.05

    # the report, from the worker's Redis
    png = tmp_path / "report.png"
    rep = subprocess.run([sys.executable, "-m", "stream.cli", "experiment", "report", "blend", "--png", str(png),
                          "--json"], env=settings.as_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    report = json.loads(rep.stdout)
    users = {v["name"]: v["users"] for v in report["variants"]}
    assert sum(users.values()) == len(loop.per_user())  # the exposed users: the loop's
    assert sum(v["assigned"] for v in report["variants"]) >= len(loop.per_user())  # and everyone ranked so far
    assert report["decision"] and report["srm"]["p_value"] > 0.001, report["srm"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the experiment's dashboard: every panel has data in the real Prometheus scraping this worker
    sys.path.insert(0, str(ROOT / "dashboards"))
    from build_dashboards import experiment_dashboard

    name = f"test-{settings.app_id}"
    register_scrape_target(settings, name, f"127.0.0.1:{settings.web_port}")
    try:
        wait_for(lambda: _query(settings, f'up{{worker="{name}"}} == 1')["data"]["result"], 60,
                 "Prometheus scraping the test worker")
        exprs = [(p["title"], t["expr"].replace('experiment="blend"', f'experiment="blend",worker="{name}"'))
                 for p in experiment_dashboard("blend")["panels"] for t in p["targets"]]
        deadline = time.monotonic() + 60
        while True:  # increase() needs two scrapes in its window
            missing = [title for title, expr in exprs if not _query(settings, expr)["data"]["result"]]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert not missing, f"no data for: {missing}"
    finally:
        unregister_scrape_target(settings, name)
