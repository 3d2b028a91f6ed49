"""A share of trials scored (``EngineConfig.trial_share``, STREAMREC_TRIAL_SHARE): the same stable
draw by event id in the engine's walk and in the protocol's per-event rankers, so every row of an
evaluation, the worker and its offline replay score the same trials."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.config import Settings
from stream.engine.batch import walk
from stream.engine.config import EngineConfig
from stream.engine.offline import EngineRanker
from stream.evaluation.prequential import PerEvent, fixed_batches, prequential
from stream.evaluation.streams import load_stream
from stream.signals import is_trial, scored
from stream.state.base import UserRecord

LEAN = {"rerank": None, "behaviour": None, "explore_share": 0.0}


class _Nobody:
    """A model that learns nothing and recommends nothing (only the trials matter here)."""

    def learn_one(self, u, i, w, ts):
        pass

    def rank(self, u, k):
        return []


def _events(n: int = 3000):
    return load_stream("simulator", sim_events=n, seed=5).events()


def test_the_walk_scores_exactly_the_trials_the_draw_picks():
    events = _events()
    users = {ev.user_id: UserRecord(ev.user_id) for ev in events}
    segments = {u: "all" for u in users}
    fresh = [True] * len(events)
    every = walk(events, fresh, users, segments, EngineConfig(**LEAN)).moments
    some = walk(events, fresh, users, segments, EngineConfig(trial_share=0.3, **LEAN)).moments
    assert len(every) > 200
    assert [m.position for m in some] == [m.position for m in every if scored(m.event.event_id, 0.3)]
    assert 0.2 * len(every) < len(some) < 0.4 * len(every)
    # and the rule itself: a trial under share 1 that the draw leaves out is no trial under 0.3
    left_out = [m.event for m in every if not scored(m.event.event_id, 0.3)]
    assert left_out and not any(is_trial(ev, 1, {}, 0.3) for ev in left_out)


def test_the_engine_and_a_per_event_ranker_score_the_same_trials():
    events = _events()
    rankers = {"engine": EngineRanker(EngineConfig(trial_share=0.5, **LEAN)),
               "per-event": PerEvent(_Nobody(), trial_share=0.5),
               "every": PerEvent(_Nobody())}
    metrics, _ = prequential(events, rankers, fixed_batches(len(events), 250), k=10, progress=None)
    assert metrics["engine"].trials == metrics["per-event"].trials
    assert 0.4 * metrics["every"].trials < metrics["engine"].trials < 0.6 * metrics["every"].trials


def test_the_share_comes_from_the_setting_and_is_checked():
    assert EngineConfig.from_settings(Settings(trial_share=0.25)).trial_share == 0.25
    assert EngineConfig.from_settings(Settings(trial_share=0.25)).describe()["trial_share"] == 0.25
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="trial_share must be in"):
            EngineConfig(trial_share=bad)
        with pytest.raises(ValidationError, match="trial_share"):
            Settings(trial_share=bad)
