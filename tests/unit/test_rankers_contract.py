"""One contract over every concrete :class:`stream.models.base.Ranker`, found automatically
(river's test_estimators.py, in spirit): a ranker added anywhere under ``stream`` is checked
without being listed here. Each is built with ``cls(**cls._unit_test_params())``.

The stream: the simulator's contract events (seeded), fed in micro-batches of mixed sizes.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import itertools

import pytest

from producers.simulator import World, WorldConfig
from stream.contract import validate_event
from stream.models.base import Ranker
from stream.signals import is_trial, marks_seen

# the modules that define rankers: importing them registers their subclasses
for _module in ("stream.engine.offline", "stream.evaluation.prequential", "stream.evaluation.baselines"):
    importlib.import_module(_module)

N_EVENTS = 1200
BATCH_SIZES = (1, 7, 30, 3, 64, 2, 100)


def _concrete_rankers() -> list[type]:
    found, todo = [], list(Ranker.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        # test modules may define helpers of their own: the contract is about the product's
        if cls.__module__.startswith("stream.") and not inspect.isabstract(cls) and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


RANKERS = _concrete_rankers()


def test_discovery_finds_the_known_rankers():
    """Guards the discovery itself: an empty or partial list would make the suite pass vacuously."""
    names = {c.__name__ for c in RANKERS}
    assert {"EngineRanker", "PerEvent"} <= names, names


def _make(cls) -> Ranker:
    return cls(**cls._unit_test_params())


def _events():
    world = World(WorldConfig(n_users=60, n_items=40, seed=3))
    return [validate_event(kind, payload) for kind, payload in world.generate(N_EVENTS, start_ts=1_000.0)]


def _batches(events):
    out, start = [], 0
    for size in itertools.cycle(BATCH_SIZES):
        if start >= len(events):
            return out
        out.append(events[start:start + size])
        start += size


BATCHES = _batches(_events())


def _expected_trials(batches):
    """The trials by the one rule, from the events alone: (batch, position, user, item)."""
    counts: dict[str, int] = {}
    seen: dict[str, set[str]] = {}
    out = []
    for b, batch in enumerate(batches):
        for n, ev in enumerate(batch):
            user_seen = seen.setdefault(ev.user_id, set())
            if is_trial(ev, counts.get(ev.user_id, 0), user_seen):
                out.append((b, n, ev.user_id, ev.item_id))
            counts[ev.user_id] = counts.get(ev.user_id, 0) + 1
            if marks_seen(ev):
                user_seen.add(ev.item_id)
    return out, seen


def _run(ranker: Ranker, batches):
    return [ranker.step(list(batch)) for batch in batches]


@pytest.fixture(scope="module", params=RANKERS, ids=lambda c: c.__name__)
def ran(request):
    """A ranker of each class after the whole stream, its trials, and whether any step
    changed the list it was given."""
    ranker = _make(request.param)
    trials, mutated = [], []
    for batch in BATCHES:
        given = list(batch)
        before = [(ev, copy.deepcopy(ev.raw)) for ev in given]
        trials.append(ranker.step(given))
        after = [(ev, ev.raw) for ev in given]
        if after != before:
            mutated.append(batch[0].event_id)
    yield ranker, trials, mutated
    close = getattr(ranker, "close", None)
    if close is not None:
        close()


def test_trials_are_exactly_the_events_the_one_rule_names(ran):
    _, trials, _ = ran
    expected, _ = _expected_trials(BATCHES)
    got = [(b, t.position, t.user_id, t.item_id) for b, batch in enumerate(trials) for t in batch]
    assert len(expected) > 100  # the stream holds enough trials to mean something
    assert got == expected


def test_step_does_not_mutate_its_input(ran):
    _, _, mutated = ran
    assert mutated == []


def test_trial_lists_have_no_repeats_and_leave_out_what_the_user_had_seen(ran):
    _, trials, _ = ran
    seen: dict[str, set[str]] = {}
    at = {}  # (batch, position) -> the user's seen items just before that event
    for b, batch in enumerate(BATCHES):
        for n, ev in enumerate(batch):
            at[(b, n)] = set(seen.get(ev.user_id, ()))
            if marks_seen(ev):
                seen.setdefault(ev.user_id, set()).add(ev.item_id)
    served = 0
    for b, batch in enumerate(trials):
        for t in batch:
            assert len(set(t.ranked)) == len(t.ranked), t
            assert not set(t.ranked) & at[(b, t.position)], t
            served += bool(t.ranked)
    assert served > 0


def test_recommend_leaves_out_seen_items_and_has_no_repeats(ran):
    ranker, _, _ = ran
    _, seen = _expected_trials(BATCHES)
    nonempty = 0
    for user in sorted(seen) + ["never-seen-user"]:
        ranked = ranker.recommend(user, 10)
        assert len(ranked) <= 10
        assert len(set(ranked)) == len(ranked), (user, ranked)
        assert not set(ranked) & seen.get(user, set()), (user, ranked)
        nonempty += bool(ranked)
    assert nonempty > len(seen) // 2  # most users are served something


@pytest.mark.parametrize("cls", RANKERS, ids=lambda c: c.__name__)
def test_same_seed_same_trials(cls):
    a, b = _make(cls), _make(cls)
    first, second = _run(a, BATCHES), _run(b, BATCHES)
    assert first == second  # positions, items and the served lists
    assert [a.recommend(u, 10) for u in ("u000001", "u000007")] == [b.recommend(u, 10) for u in ("u000001", "u000007")]
