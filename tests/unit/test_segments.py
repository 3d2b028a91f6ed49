"""Segment assignment: profile attributes (folded, few, readable) and behaviour clustering (stable ids, moves)."""

import json

import numpy as np
import pytest

from stream.models.behaviour import BehaviourSegmenter
from stream.models.segments import OTHER, Assignments, ProfileSegmenter, age_band


def _profiles(n=300, seed=0):
    rng = np.random.default_rng(seed)
    occupations = ["student"] * 6 + ["engineer"] * 3 + ["writer", "doctor", "lawyer", "homemaker"]
    return [{"age": str(int(a)), "gender": str(g), "occupation": str(o)}
            for a, g, o in zip(rng.integers(15, 75, n), rng.choice(["F", "M"], n), rng.choice(occupations, n))]


def test_age_bands_and_readable_ids():
    assert [age_band(a) for a in (7, 24, 25, 34, 35, 49, 50, 90)] == ["<25", "<25", "25-34", "25-34", "35-49",
                                                                       "35-49", "50+", "50+"]
    seg = ProfileSegmenter(["age", "gender"], min_users=1).fit(_profiles())
    assert seg.segment_of({"age": "30", "gender": "F"}) == "age:25-34/gender:F"
    assert seg.segment_of({"gender": "F"}) == OTHER  # "age:unknown" was never a segment


def test_rare_values_fold_into_other_and_segments_stay_few():
    profiles = _profiles()
    seg = ProfileSegmenter(["age", "gender", "occupation"], min_users=20, max_segments=32).fit(profiles)
    ids = {seg.segment_of(p) for p in profiles}
    assert len(ids) <= 32
    assert not any("occupation:lawyer" in s or "occupation:doctor" in s for s in ids)  # rare: folded
    assert any(s.endswith("occupation:other") for s in ids)
    sizes = {s: sum(seg.segment_of(p) == s for p in profiles) for s in ids}
    assert all(size >= 20 for s, size in sizes.items() if s != OTHER)
    # a small cap keeps the largest segments and sends the rest to "other"
    small = ProfileSegmenter(["age", "gender", "occupation"], min_users=1, max_segments=5).fit(profiles)
    assert len({small.segment_of(p) for p in profiles}) <= 5
    assert OTHER in {small.segment_of(p) for p in profiles}


def test_a_rare_combination_gives_up_its_last_attributes_first():
    profiles = ([{"age": "20", "gender": "F", "occupation": "student"}] * 5
                + [{"age": "20", "gender": "F", "occupation": "artist"}] * 2
                + [{"age": "20", "gender": "M", "occupation": "artist"}] * 2
                + [{"age": "40", "gender": "M", "occupation": "artist"}])
    seg = ProfileSegmenter(["age", "gender", "occupation"], min_users=3).fit(profiles)
    assert seg.segment_of(profiles[0]) == "age:<25/gender:F/occupation:student"
    # artists are 5 (kept as a value) but no age/gender/artist cell has 3: they fold to age/other/other
    assert seg.segment_of(profiles[5]) == "age:<25/gender:other/occupation:other"
    assert seg.segment_of(profiles[7]) == "age:<25/gender:other/occupation:other"
    assert seg.segment_of(profiles[-1]) == OTHER


def test_profile_changes_are_counted_as_moves():
    seg = ProfileSegmenter(["age"], min_users=1).fit([{"age": "20"}, {"age": "30"}])
    seg.assign("ann", {"age": "24"})
    seg.assign("ann", {"age": "24"})
    seg.assign("ann", {"age": "26"})
    seg.assign("bob", {"age": "26"})
    assert seg.assignments.n_moves == 1
    assert dict(seg.assignments.moves) == {("age:<25", "age:25-34"): 1}
    assert seg.assignments.sizes() == {"age:25-34": 2}


def test_assignments_count_per_from_to_pair():
    a = Assignments()
    for segment in ["x", "y", "x", "x", "y"]:
        a.set("u", segment)
    assert dict(a.moves) == {("x", "y"): 2, ("y", "x"): 1} and a.n_moves == 3


def _behaviour_stream(seg, rounds, convert=None):
    """Four clickers (long dwell) and four skippers; 'convert' acts like a clicker or a skipper."""
    for n in range(rounds):
        seg.learn_one(f"clicker{n % 4}", 2.0)
        seg.learn_one(f"skipper{n % 4}", -1.0 if (n // 4) % 5 else 0.5)
        if n % 4 == 0 and convert == "click":
            seg.learn_one("convert", 2.0)
        if n % 4 == 0 and convert == "skip":
            seg.learn_one("convert", -1.0 if (n // 4) % 5 else 0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_behaviour_ids_are_stable_and_readable(seed):
    seg = BehaviourSegmenter(n_clusters=2, halflife=0.05, hysteresis=3, min_events=2, seed=seed)
    _behaviour_stream(seg, 400)
    first = {u: seg.segment_of(u) for u in ("clicker0", "clicker1", "skipper0", "skipper1")}
    assert first["clicker0"] == first["clicker1"] != first["skipper0"] == first["skipper1"]
    assert set(first.values()) == {"behaviour-0", "behaviour-1"}
    labels = seg.labels()
    assert labels[first["clicker0"]].endswith("long-dwell/low-skip")
    assert labels[first["skipper0"]].endswith("short-dwell/high-skip")
    _behaviour_stream(seg, 400)  # more of the same: nobody moves, ids stay
    assert {u: seg.segment_of(u) for u in first} == first
    assert seg.assignments.n_moves == 0


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_user_who_changes_habits_moves_once_and_is_counted(seed):
    seg = BehaviourSegmenter(n_clusters=2, halflife=0.05, hysteresis=5, min_events=2, seed=seed)
    _behaviour_stream(seg, 400, convert="click")
    clickers, skippers = seg.segment_of("clicker0"), seg.segment_of("skipper0")
    assert seg.segment_of("convert") == clickers
    _behaviour_stream(seg, 400, convert="skip")
    assert seg.segment_of("convert") == skippers
    assert seg.assignments.moves[(clickers, skippers)] == 1 and seg.assignments.n_moves == 1


def _wobble(hysteresis, block):
    """Clickers, skippers, and a user who alternates runs of ``block`` clicks and skips."""
    seg = BehaviourSegmenter(n_clusters=2, halflife=0.05, hysteresis=hysteresis, min_events=2, seed=0)
    for n in range(4000):
        seg.learn_one(f"clicker{n % 4}", 2.0)
        seg.learn_one(f"skipper{n % 4}", -1.0 if (n // 4) % 5 else 0.5)
        if n % 4 == 0:
            m = n // 4
            seg.learn_one("wobbler", 2.0 if (m // block) % 2 else (-1.0 if m % 3 else 0.5))
    return seg.assignments.n_moves


def test_hysteresis_damps_short_wobbles_but_follows_lasting_changes():
    assert _wobble(hysteresis=1, block=10) > 0
    assert _wobble(hysteresis=5, block=10) == 0
    assert _wobble(hysteresis=5, block=40) >= 20  # 25 changes of habit, each a move


def test_behaviour_state_round_trips_through_json():
    seg = BehaviourSegmenter(n_clusters=3, taste_dims=2, seed=4)
    rng = np.random.default_rng(0)
    for n in range(300):
        seg.learn_one(f"u{n % 20}", float(rng.choice([-1.0, 0.0, 1.0, 2.0])), taste=rng.normal(size=2))
    restored = BehaviourSegmenter.from_dict(json.loads(json.dumps(seg.to_dict())))
    tail = [(f"u{n % 25}", float(w), t) for n, (w, t) in
            enumerate(zip(rng.choice([-1.0, 1.0], 200), rng.normal(size=(200, 2))))]
    assert [seg.learn_one(u, w, taste=t) for u, w, t in tail] == [restored.learn_one(u, w, taste=t)
                                                                   for u, w, t in tail]
    assert seg.to_dict() == restored.to_dict()


def test_behaviour_checks_its_arguments():
    with pytest.raises(ValueError, match="n_clusters must be in 1..32"):
        BehaviourSegmenter(n_clusters=40)
    with pytest.raises(ValueError, match="taste must have taste_dims=2"):
        BehaviourSegmenter(taste_dims=2, min_events=1).learn_one("u", 1.0, taste=[1.0])
