"""Segments from profile attributes: folded, few, readable (stream/models/segments/profile.py);
behaviour segments are tested in test_behaviour_segments.py."""

import json

import numpy as np

from stream.engine.config import EngineConfig
from stream.engine.offline import EngineRanker
from stream.models.segments import OTHER, ProfileSegmenter, age_band
from stream.models.segments.profile import Assignments, profile_segment


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


def test_a_fitted_segmenter_round_trips_through_its_parameters():
    profiles = _profiles()
    seg = ProfileSegmenter(["age", "gender", "occupation"], min_users=20).fit(profiles)
    again = ProfileSegmenter(**json.loads(json.dumps(seg.get_params())))
    assert [again.segment_of(p) for p in profiles] == [seg.segment_of(p) for p in profiles]


def test_a_profile_without_the_attributes_is_in_the_default_segment():
    seg = ProfileSegmenter(["age", "plan"])
    assert profile_segment({"plan": "pro"}, seg, "all") == "age:unknown/plan:pro"
    assert profile_segment({"country": "fr", "plan": ""}, seg, "all") == "all"


def test_the_engine_caps_profile_segments_and_sends_the_rest_to_other():
    ranker = EngineRanker(EngineConfig(rerank=None, behaviour=None, max_segments=2,
                                       segmenter={"attributes": ["segment"]}))
    assigned = [ranker.apply_profile(u, {"segment": s}) for u, s in
                [("a", "s1"), ("b", "s2"), ("c", "s3"), ("d", "s1"), ("e", "")]]
    assert assigned == ["segment:s1", "segment:s2", OTHER, "segment:s1", "all"]
    assert ranker.apply_profile("a", {"segment": "s2"}) == "segment:s2"  # a changed profile moves the user
    ranker.close()
