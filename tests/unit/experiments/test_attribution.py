"""Attribution in memory: what events count against the list they name, each once, within the window."""

from __future__ import annotations

import asyncio

import numpy as np

from stream.contract import make_event, validate_event
from stream.experiments.assign import Assigner
from stream.experiments.attribution import Attribution, decode_counters, new_counters
from stream.experiments.cli import report_experiment
from stream.experiments.definition import parse
from stream.experiments.state import MemoryExperiments
from stream.metrics import build
from tests.helpers import Clock, experiment_toml


def _list(user: str, rec_id: str, n: int = 5, experiment=None, variant=None, segment: str = "all") -> dict:
    return {"user_id": user, "rec_id": rec_id, "segment": segment, "experiment": experiment, "variant": variant,
            "items": [{"item_id": f"i{j}"} for j in range(n)]}


_n = iter(range(10**9))


def _ev(etype: str, user: str, rec_id: str | None, position: int | None = None, event_id: str | None = None, **extra):
    context = {} if rec_id is None else {"rec_id": rec_id}
    if position is not None:
        context["position"] = position
    if etype == "impression":
        extra.setdefault("items", ["i0", "i1"])
    payload = make_event(etype, event_id=event_id or f"e{next(_n)}", user_id=user, item_id="i0", ts=10.0,
                         **({"context": context} if context else {}), **extra)
    return validate_event(etype, payload)


def test_a_lists_events_count_against_it_once():
    att = Attribution(MemoryExperiments(), window=60)
    asyncio.run(att.record([_list("ann", "r1", experiment="exp", variant="b")]))
    events = [_ev("impression", "ann", "r1"), _ev("click", "ann", "r1", 2), _ev("click", "ann", "r1", 0),
              _ev("dwell", "ann", "r1", 2, seconds=30), _ev("skip", "ann", "r1", 3, after_seconds=1),
              _ev("purchase", "ann", "r1", 2, value=12.5, currency="EUR"), _ev("purchase", "ann", "r1", 2)]
    out = asyncio.run(att.attribute(events))
    labels = ("all", "exp", "b")
    assert (out.shown, out.clicked, out.converted, out.purchases, out.skips, out.dwell_events) == (1, 1, 1, 2, 1, 1)
    assert out.clicks == {(*labels, "3"): 1, (*labels, "1"): 1}
    assert out.revenue == {(*labels, "EUR"): 12.5}
    assert out.by_label[("dwell_s", *labels)] == 30.0
    # the same events again (a redelivery after a crash): nothing more
    again = asyncio.run(att.attribute(events))
    assert again.repeats == len(events) and again.shown == again.clicked == again.purchases == 0 and not again.clicks
    metrics = build()
    out.observe(metrics)
    got = metrics.registry.get_sample_value
    assert got("streamrec_lists_shown_total", {"segment": "all", "experiment": "exp", "variant": "b"}) == 1
    assert got("streamrec_list_clicks_total", {"segment": "all", "experiment": "exp", "variant": "b", "position": "3"}) == 1
    assert got("streamrec_list_revenue_total", {"segment": "all", "experiment": "exp", "variant": "b", "currency": "EUR"}) == 12.5


def test_the_user_counters_of_an_experiment():
    state = MemoryExperiments()
    exp = parse(experiment_toml("exp"))[0]
    (e, v), = asyncio.run(Assigner([exp], state, new_counters).assign({"ann": "all"})).values()
    att = Attribution(state, window=60)
    asyncio.run(att.record([_list("ann", "r1", experiment=e, variant=v), _list("ann", "r2", experiment=e, variant=v)]))
    asyncio.run(att.attribute([_ev("click", "ann", "r1", 0), _ev("click", "ann", "r1", 1), _ev("impression", "ann", "r2"),
                               _ev("purchase", "ann", "r2", 1, value=3.0, currency="USD")]))
    (raw,) = asyncio.run(state.counters("exp", v))
    c = decode_counters(raw)
    assert (c.shown, c.clicked, c.clicks, c.converted, c.purchases, c.revenue) == (2, 1, 2, 1, 1, {"USD": 3.0})


def test_what_is_not_attributed_is_counted_by_reason():
    clock = Clock(100.0)
    att = Attribution(MemoryExperiments(clock=clock), window=60)
    asyncio.run(att.record([_list("ann", "r1", n=3), _list("ann", "r-full", n=3)]))
    asyncio.run(att.attribute([_ev("skip", "ann", "r-full", 0, after_seconds=1) for _ in range(64)]))
    out = asyncio.run(att.attribute([
        _ev("click", "ann", "nope", 0), _ev("click", "bob", "r1", 0), _ev("click", "ann", "r1", 3),
        _ev("click", "ann", "r-full", 0), _ev("click", "ann", None)]))
    assert dict(out.unmatched) == {"unknown_list": 1, "other_user": 1, "bad_position": 1, "list_full": 1}
    clock.now += 61  # past the join window
    late = asyncio.run(att.attribute([_ev("click", "ann", "r1", 0)]))
    assert dict(late.unmatched) == {"unknown_list": 1} and late.clicked == 0


def test_a_change_between_load_and_commit_computes_the_batch_again():
    class Racing(MemoryExperiments):
        raced = False

        async def commit(self, lists, counters):
            if not self.raced:  # another writer counts a click on r1 first
                self.raced = True
                await Attribution(self, window=60).attribute([_ev("click", "ann", "r1", 1, event_id="other")])
            return await super().commit(lists, counters)

    state = Racing()
    att = Attribution(state, window=60)
    asyncio.run(att.record([_list("ann", "r1")]))
    out = asyncio.run(att.attribute([_ev("click", "ann", "r1", 0, event_id="mine")]))
    assert out.attempts == 2 and out.clicked == 0 and out.clicks == {("all", "none", "none", "1"): 1}
    assert out.shown == 0  # the other writer's click showed the list


def test_the_report_finds_the_better_variant_from_attributed_events():
    """Users assigned, served lists recorded, clicks from a planted CTR (variant b: 0.30 against
    0.20 a list): the report, on what attribution stored, names b, with no sample-ratio alarm."""
    state = MemoryExperiments()
    exp = parse(experiment_toml("exp"))[0]
    assigner = Assigner([exp], state, new_counters, clock=Clock(0.0))
    att = Attribution(state, window=3600)
    rng = np.random.default_rng(5)
    users = [f"u{j}" for j in range(3000)]

    async def run():
        assigned = await assigner.assign({u: "all" for u in users})
        lists, events = [], []
        for u in users:
            e, v = assigned[u]
            for n in range(3):
                rec = f"{u}-{n}"
                lists.append(_list(u, rec, experiment=e, variant=v))
                events.append(_ev("impression", u, rec))
                if rng.random() < (0.30 if v == "b" else 0.20):
                    events.append(_ev("click", u, rec, int(rng.integers(0, 5))))
        await att.record(lists)
        for j in range(0, len(events), 500):
            await att.attribute(events[j:j + 500])
        return await report_experiment(exp, state)

    report, _ = asyncio.run(run())
    assert report.winner == "b" and not report.srm.alarm
    assert report.decided_after_users is not None and report.decided_after_users < 3000
    assert sum(v.assigned for v in report.variants) == 3000
    assert len(asyncio.run(state.looks("exp"))) == 1
