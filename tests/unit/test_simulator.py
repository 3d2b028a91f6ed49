from __future__ import annotations

import numpy as np
import pytest

from producers.replay import movielens_stream
from producers.simulator import World, WorldConfig
from stream.contract import validate_event

CFG = WorldConfig(n_users=100, n_items=60, n_segments=3, n_categories=4, seed=11)


def test_same_seed_same_stream_different_seed_different_stream():
    a = list(World(CFG).generate(500))
    assert a == list(World(CFG).generate(500))
    assert a != list(World(WorldConfig(**{**CFG.__dict__, "seed": 12})).generate(500))


def test_every_generated_event_is_valid_and_time_ordered():
    world = World(CFG)
    events = list(world.generate(2000, start_ts=100.0))
    for etype, payload in events:
        validate_event(etype, payload)
    ts = [p["ts"] for _, p in events]
    assert ts == sorted(ts)
    assert len({p["event_id"] for _, p in events}) == len(events)
    for payload in list(world.profiles()) + [validate_event("item", p).raw for p in world.catalogue()]:
        assert payload["schema"] == "v1"


def test_clicks_follow_true_affinity():
    """Known answer: clicked items have higher true affinity than the slates they were picked from."""
    world = World(WorldConfig(n_users=200, n_items=100, seed=3))
    idx = {u: i for i, u in enumerate(world.user_ids)}
    item_idx = {it: i for i, it in enumerate(world.item_ids)}
    clicked, shown = [], []
    for etype, p in world.generate(6000):
        aff = world.affinity(idx[p["user_id"]])
        if etype == "click":
            clicked.append(aff[item_idx[p["item_id"]]])
        elif etype == "impression":
            shown.extend(aff[[item_idx[i] for i in p["items"]]])
    assert np.mean(clicked) > np.mean(shown) + 0.5


def test_segments_are_named_in_profiles():
    world = World(CFG)
    segs = {p["attributes"]["segment"] for p in world.profiles()}
    assert segs == set(world.segment_names) and len(segs) == 3


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="slate_size"):
        WorldConfig(n_items=3, slate_size=5)


def test_movielens_mapping(tmp_path):
    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t5\t300\n2\t20\t3\t100\n1\t30\t1\t200\n")
    events = list(movielens_stream(tmp_path))
    # rating 3: a lukewarm dwell of 30 s (seen, a weak positive, not a click: never a trial)
    assert [(e, p["item_id"]) for e, p in events] == [
        ("dwell", "20"), ("skip", "30"), ("click", "10"), ("dwell", "10")]
    assert events[0][1]["seconds"] == 30.0 and events[3][1]["seconds"] == 120.0
    assert events[1][1]["after_seconds"] == 10.0
    for etype, payload in events:
        validate_event(etype, payload)
