"""The closed loop: simulated users are shown the lists the worker serves, and respond from the
world's ground truth.

Each round picks users (a seeded draw by their activity, without repeats within the round),
asks the worker for their lists (rec-requests, in one batch), and reads the answers from the
recommendations topic by request id: exactly what was served. For each list the user is shown,
it publishes an impression (``items`` = the served item ids in order, ``rec_id`` and
``context.rec_id`` = the list's) and then what they did (producers/response.py: position bias
and the true affinity): clicks, dwells, skips and purchases, each with ``context``
``{"rec_id", "position"}`` (the item's 0-based place in the served list, as the contract
defines ``context.position``: the list message's ``rank`` - 1). Event times increase.

A better ranking earns more clicks and revenue only by putting what the users truly like where
they look: the response model never reads a list's model, experiment or variant. They are
recorded (``experiment``/``variant``, None when the list has none) so results can be split.

.. code-block:: python

    world = World(WorldConfig(seed=7))
    with EventProducer(settings) as producer, RequestAnswers(settings) as answers:
        seed_stack(world, producer, settings, warmup_events=20_000, run_id="cl7")
        loop = ClosedLoop(world, producer, answers, LoopConfig(users=100, rounds=10, seed=7))
        summary = loop.run()
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from producers.response import ResponseModel, respond
from producers.simulator import World, click_probability

__all__ = ["ClosedLoop", "LoopConfig", "ListRecord", "RoundRecord", "seed_stack"]


@dataclass(frozen=True)
class LoopConfig:
    """A closed loop's run.

    Parameters
    ----------
    users
        Users a round (at most the world's).
    rounds
        Rounds to run.
    k
        Length of the lists asked for.
    seed
        Of the users' draw and of their responses (the world has its own).
    answer_timeout
        Seconds a round waits for its answers; a request not answered by then is counted in
        ``unanswered`` and its user sits the round out.
    pause_seconds
        Pause between rounds (time for the worker to learn from the last round's events).
    run_id
        Prefix of request and event ids (default: random, so runs never collide).
    """

    users: int = 100
    rounds: int = 10
    k: int = 10
    seed: int = 0
    answer_timeout: float = 30.0
    pause_seconds: float = 0.0
    run_id: str | None = None

    def __post_init__(self):
        for name in ("users", "rounds", "k"):
            if getattr(self, name) < 1:
                raise ValueError(f"LoopConfig.{name} is {getattr(self, name)}: must be >= 1")
        if self.answer_timeout <= 0 or self.pause_seconds < 0:
            raise ValueError(f"LoopConfig.answer_timeout is {self.answer_timeout} and pause_seconds "
                             f"{self.pause_seconds}: the timeout must be > 0 and the pause >= 0")


@dataclass(frozen=True)
class ListRecord:
    """One list a user was shown, and what they did with it (``clicks`` ... ``purchases``: the
    1-based ranks acted on, in order; the events' ``context.position`` is rank - 1)."""

    round: int
    user_id: str
    request_id: str
    rec_id: str
    model: str | None
    experiment: str | None
    variant: str | None
    items: tuple[str, ...]
    clicks: tuple[int, ...]
    dwells: tuple[int, ...]
    skips: tuple[int, ...]
    purchases: tuple[int, ...]
    revenue: float
    #: mean true affinity of the shown items the world knows (None: it knows none of them)
    mean_affinity: float | None
    #: mean true affinity of the user's k best items: what a perfect list would show
    ideal_affinity: float
    #: clicks the response model expects of this list (its ground-truth quality, without the draw's noise)
    expected_clicks: float


@dataclass(frozen=True)
class RoundRecord:
    round: int
    asked: int
    answered: int
    #: seconds from sending the round's requests to the last answer read (or the timeout)
    round_trip_seconds: float
    events: int


class ClosedLoop:
    """Rounds of sessions over what the worker serves (see the module docstring).

    Parameters
    ----------
    world
        The ground truth.
    producer
        :class:`producers.sdk.EventProducer`: requests and events go out through it.
    answers
        :class:`consumers.answers.RequestAnswers`, made before the first request.
    config
        :class:`LoopConfig`.
    model
        :class:`producers.response.ResponseModel` (``purchases=False`` for workers whose contract
        predates the purchase event).
    progress
        Called with a status line after a round, at most once a second (and after the last).
    """

    def __init__(self, world: World, producer, answers, config: LoopConfig = LoopConfig(),
                 model: ResponseModel = ResponseModel(), progress: Callable[[str], None] | None = None):
        if config.users > len(world.user_ids):
            raise ValueError(f"LoopConfig.users is {config.users}: the world has only {len(world.user_ids)} users")
        self.world = world
        self.producer = producer
        self.answers = answers
        self.config = config
        self.model = model
        self.progress = progress
        self.run_id = config.run_id or uuid.uuid4().hex[:10]
        self.rng = np.random.default_rng(config.seed)
        self.lists: list[ListRecord] = []
        self.rounds: list[RoundRecord] = []
        self.unanswered = 0
        self.empty = 0
        self._events = 0
        self._last_ts = 0.0
        self._user_index = {uid: u for u, uid in enumerate(world.user_ids)}

    # --- running ----------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Every round; returns :meth:`summary`."""
        started = last_line = time.monotonic()
        first = len(self.rounds)
        for r in range(first, first + self.config.rounds):
            if r > first and self.config.pause_seconds:
                time.sleep(self.config.pause_seconds)
            self.run_round(r)
            now = time.monotonic()
            if self.progress is not None and (now - last_line >= 1.0 or r == first + self.config.rounds - 1):
                self.progress(self._status(r, now - started))
                last_line = now
        return self.summary()

    def run_round(self, r: int) -> RoundRecord:
        """One round: ask for the drawn users' lists, show each answered list, publish what they did."""
        c = self.config
        users = self.rng.choice(len(self.world.user_ids), size=c.users, replace=False, p=self.world.user_activity)
        asked = {}
        started = time.monotonic()
        for u in users:
            uid = self.world.user_ids[int(u)]
            asked[self.producer.request_recommendations(uid, c.k, request_id=f"{self.run_id}-r{r}-{uid}")] = uid
        self.producer.flush()
        answers = self.answers.wait(asked, c.answer_timeout)
        round_trip = time.monotonic() - started
        events_before = self._events
        for request_id, uid in asked.items():  # in the order drawn
            body = answers.get(request_id)
            if body is None:
                self.unanswered += 1
            else:
                self._show(r, uid, request_id, body)
        self.producer.flush()
        record = RoundRecord(r, len(asked), len(answers), round_trip, self._events - events_before)
        self.rounds.append(record)
        return record

    def _show(self, r: int, user_id: str, request_id: str, body: dict[str, Any]) -> None:
        items = tuple(str(x["item_id"]) for x in body.get("items") or ())
        if not items:
            self.empty += 1  # an impression needs at least one item: nothing was shown
            return
        rec_id = str(body["rec_id"])
        u = self._user_index[user_id]
        shown = [self.world.item_index(i) for i in items]
        self._send("impression", user_id, {"items": list(items), "rec_id": rec_id, "context": {"rec_id": rec_id}})
        by_kind: dict[str, list[int]] = {"click": [], "dwell": [], "skip": [], "purchase": []}
        revenue = 0.0
        for reaction in respond(self.world, u, shown, self.rng, self.model):
            position = reaction.rank - 1  # the contract's context.position is 0-based
            self._send(reaction.event_type, user_id, {"item_id": items[position], **reaction.fields,
                                                       "context": {"rec_id": rec_id, "position": position}})
            by_kind[reaction.event_type].append(reaction.rank)
            revenue += reaction.fields.get("value", 0.0) if reaction.event_type == "purchase" else 0.0
        known = [(p, i) for p, i in enumerate(shown, start=1) if i is not None]
        aff = self.world.affinities(u, [i for _, i in known]) if known else np.zeros(0)
        every = self.world.affinity(u)
        self.lists.append(ListRecord(
            round=r, user_id=user_id, request_id=request_id, rec_id=rec_id, model=body.get("model"),
            experiment=body.get("experiment"), variant=body.get("variant"), items=items,
            clicks=tuple(by_kind["click"]), dwells=tuple(by_kind["dwell"]), skips=tuple(by_kind["skip"]),
            purchases=tuple(by_kind["purchase"]), revenue=round(revenue, 2),
            mean_affinity=float(aff.mean()) if known else None,
            ideal_affinity=float(np.sort(every)[::-1][:len(items)].mean()),
            expected_clicks=float(sum(self.model.examination(p) * click_probability(a)
                                      for (p, _), a in zip(known, aff.tolist())))))

    def _send(self, event_type: str, user_id: str, fields: dict[str, Any]) -> None:
        # event time: the wall clock, strictly increasing over the loop's events
        self._last_ts = max(round(time.time(), 3), round(self._last_ts + 0.001, 3))
        self.producer.send(event_type, {"event_id": f"{self.run_id}-e{self._events}", "user_id": user_id,
                                        "ts": self._last_ts, "schema": "v1", **fields})
        self._events += 1

    # --- results ----------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """What the loop did: overall, and per (experiment, variant) as ``"experiment/variant"``
        (``"-"`` for lists without one)."""
        trips = sorted(x.round_trip_seconds for x in self.rounds)
        groups: dict[str, list[ListRecord]] = {}
        for rec in self.lists:
            key = "-" if rec.experiment is None and rec.variant is None else f"{rec.experiment}/{rec.variant}"
            groups.setdefault(key, []).append(rec)
        return {
            "run_id": self.run_id, "rounds": len(self.rounds), "asked": sum(x.asked for x in self.rounds),
            "unanswered": self.unanswered, "late_answers": self.answers.late, "empty_lists": self.empty,
            "events": self._events,
            "round_trip_seconds": {"median": round(trips[len(trips) // 2], 3), "max": round(trips[-1], 3)}
            if trips else None,
            **_figures(self.lists, self.model.currency),
            "by_variant": {key: _figures(recs, self.model.currency) for key, recs in sorted(groups.items())},
        }

    def per_user(self) -> dict[str, dict[str, Any]]:
        """user id -> their lists, clicks, purchases and revenue, and the variants they were served."""
        out: dict[str, dict[str, Any]] = {}
        for rec in self.lists:
            row = out.setdefault(rec.user_id, {"lists": 0, "clicks": 0, "purchases": 0, "revenue": 0.0,
                                               "variants": set()})
            row["lists"] += 1
            row["clicks"] += len(rec.clicks)
            row["purchases"] += len(rec.purchases)
            row["revenue"] = round(row["revenue"] + rec.revenue, 2)
            row["variants"].add((rec.experiment, rec.variant))
        return out

    def _status(self, r: int, elapsed: float) -> str:
        s = _figures(self.lists, self.model.currency)
        last = self.rounds[-1]
        return (f"[{elapsed:7.1f} s] round {r + 1}  lists {s['lists']:,}  "
                f"unanswered {self.unanswered:,}  round trip {last.round_trip_seconds:.2f} s  "
                f"clicks/list {s['clicks_per_list'] or 0:.3f}  purchases {s['purchases']:,}  "
                f"revenue {s['revenue']:,.2f} {self.model.currency}  mean affinity {s['mean_affinity'] or 0:.3f}")


def _figures(lists: list[ListRecord], currency: str) -> dict[str, Any]:
    n = len(lists)

    def mean(values) -> float | None:
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 4) if values else None

    clicks = sum(len(x.clicks) for x in lists)
    return {
        "users": len({x.user_id for x in lists}), "lists": n, "clicks": clicks,
        "dwells": sum(len(x.dwells) for x in lists), "skips": sum(len(x.skips) for x in lists),
        "purchases": sum(len(x.purchases) for x in lists),
        "revenue": round(sum(x.revenue for x in lists), 2), "currency": currency,
        "clicks_per_list": round(clicks / n, 4) if n else None,
        "expected_clicks_per_list": mean([x.expected_clicks for x in lists]),
        "mean_affinity": mean([x.mean_affinity for x in lists]),
        "ideal_affinity": mean([x.ideal_affinity for x in lists]),
    }


def seed_stack(world: World, producer, settings, *, warmup_events: int, run_id: str, catalogue: bool = True,
               wait_seconds: float = 120.0, quiet: bool = True) -> int:
    """Prepare a stack for the loop as ``streamrec-produce simulate`` does (profiles, catalogue,
    ``warmup_events`` of the open stream, stamped live), then wait until the workers' group has
    committed every event (so the first round is served by models that learned the warm-up).
    Returns the warm-up events sent; raises TimeoutError after ``wait_seconds`` (0: no wait)."""
    from consumers.answers import worker_lag
    from producers.cli import publish_world

    sent = publish_world(producer, world, warmup_events, run_id=run_id, catalogue=catalogue, rate=None, quiet=quiet)
    deadline = time.monotonic() + wait_seconds
    lag = 0
    while wait_seconds and (lag := worker_lag(settings)) > 0:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"seeding the closed loop: the workers (group {settings.app_id!r}) still had {lag:,} "
                               f"events to apply after {wait_seconds:.0f} s: is a worker running with this "
                               "STREAMREC_APP_ID and topic prefix?")
        time.sleep(0.5)
    return sent
