"""Evaluation data: the MovieLens readers and download (no network: pip is faked), and the
streams of contract events every evaluation runs on (stream/evaluation/streams.py)."""

import calendar
import json
import subprocess
import zipfile

import numpy as np
import pytest

from stream.evaluation import datasets
from stream.evaluation.streams import load_stream
from tests.helpers import unavailable

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t5\t300\n2\t10\t2\t100\n1\t11\t3\t100\n"
USER = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t24\tM\ttechnician\t85711\n"
ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n10\tToy Story\t1995\tAnimation Comedy\n11\tOdd\t\t\n"
FILES = (("ml-100k.inter", INTER), ("ml-100k.user", USER), ("ml-100k.item", ITEM))


@pytest.fixture
def ml_dir(tmp_path):
    for name, text in FILES:
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def cached_ml(tmp_path, monkeypatch):
    """The tiny files where the cache keeps MovieLens; pip must not run."""
    target = tmp_path / "cache" / "datasets" / "ml-100k"
    target.mkdir(parents=True)
    for name, text in FILES:
        (target / name).write_text(text)
    monkeypatch.setenv("STREAMREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    return target


def test_readers_give_plain_structures(ml_dir):
    inter = datasets.read_inter(ml_dir / "ml-100k.inter")
    assert inter.user_ids.tolist() == ["1", "2", "1"] and inter.ratings.dtype == np.float32
    ordered = inter.time_ordered()
    assert ordered.item_ids.tolist() == ["10", "11", "10"]  # ties keep file order
    assert datasets.read_users(ml_dir / "ml-100k.user")["1"]["occupation"] == "technician"
    items = datasets.read_items(ml_dir / "ml-100k.item")
    assert items["10"] == {"title": "Toy Story", "release_year": 1995, "categories": ["Animation", "Comedy"]}
    assert items["11"]["release_year"] is None and items["11"]["categories"] == []


def test_cached_files_are_not_downloaded_again(ml_dir, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert datasets.movielens_100k_dir(ml_dir) == ml_dir


def test_download_extracts_from_the_wheel(tmp_path, monkeypatch):
    def fake_pip(cmd, **kwargs):
        dest = cmd[cmd.index("-d") + 1]
        with zipfile.ZipFile(f"{dest}/recbole-1.2.1-py3-none-any.whl", "w") as wheel:
            for name, text in FILES:
                wheel.writestr(f"recbole/dataset_example/ml-100k/{name}", text)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    monkeypatch.setenv("STREAMREC_CACHE_DIR", str(tmp_path / "cache"))
    target = datasets.movielens_100k_dir()
    assert target == tmp_path / "cache" / "datasets" / "ml-100k"
    assert (target / "ml-100k.inter").read_text() == INTER


def test_unreachable_pip_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: subprocess.CompletedProcess(cmd, 1, "", "No matching distribution"))
    with pytest.raises(RuntimeError, match="could not download the recbole wheel"):
        datasets.movielens_100k_dir(tmp_path / "x")


def test_movielens_stream_maps_ratings_to_contract_events_in_time_order(cached_ml):
    stream = load_stream("movielens-100k")
    assert stream.name == "movielens-100k"
    # rating 2 at t=100: a skip; rating 3 at t=100 (file order): a dwell of 30 s; rating 5: click + dwell
    assert [(t, p["user_id"], p["item_id"], p["ts"]) for t, p in stream.interactions] == [
        ("skip", "2", "10", 100.0), ("dwell", "1", "11", 100.0), ("click", "1", "10", 300.0), ("dwell", "1", "10", 300.0)]
    assert stream.interactions[0][1]["after_seconds"] == 20.0
    assert [p.get("seconds") for _, p in stream.interactions] == [None, 30.0, None, 120.0]
    events = stream.events()
    assert [ev.type for ev in events] == ["skip", "dwell", "click", "dwell"] and stream.positives == 3
    assert stream.profiles == [{"event_id": "ml100k-profile-1", "user_id": "1", "ts": 0.0, "schema": "v1",
                                "attributes": {"age_band": "18-24", "gender": "M", "occupation": "technician",
                                               "zip_code": "85711"}}]
    by_id = {p["item_id"]: p for p in stream.catalogue}
    assert by_id["10"]["categories"] == ["Animation", "Comedy"]
    assert by_id["10"]["created_at"] == float(calendar.timegm((1995, 1, 1, 0, 0, 0)))
    assert by_id["11"]["categories"] == [] and by_id["11"]["created_at"] == 0.0
    assert [t for t, _ in load_stream("movielens-100k", ratings=2).interactions] == ["skip", "dwell"]
    assert len(load_stream("movielens-100k", limit=3).interactions) == 3


def test_the_real_movielens_stream_is_time_ordered_and_valid():
    if not all((datasets.cache_root() / "datasets" / "ml-100k" / name).is_file() for name, _ in FILES):
        unavailable("MovieLens-100K is not in the cache (streamrec evaluate downloads it)")
    stream = load_stream("movielens-100k", limit=2000, ratings=1500)
    events = stream.events()
    assert len(events) == 2000 and len(stream.profiles) == 943 and len(stream.catalogue) == 1682
    ts = [ev.ts for ev in events]
    assert ts == sorted(ts)
    assert {ev.type for ev in events} == {"click", "dwell", "skip"}
    assert len({ev.event_id for ev in events}) == len(events)  # a replay is recognised as duplicates


def test_the_simulator_stream_is_seeded_and_carries_its_world():
    a = load_stream("simulator", sim_events=300, seed=3)
    b = load_stream("simulator", sim_events=300, seed=3)
    assert a.interactions == b.interactions and len(a.interactions) == 300
    assert a.world is not None and len(a.profiles) == a.world.config.n_users
    assert load_stream("simulator", sim_events=300, seed=4).interactions != a.interactions
    assert len(a.limit(10).interactions) == 10 and a.limit(None) is a


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_a_json_lines_file_is_a_stream(tmp_path):
    path = _write(tmp_path / "events.jsonl", [
        {"type": "user", "event_id": "p1", "user_id": "u1", "ts": 0, "schema": "v1", "attributes": {"plan": "pro"}},
        {"type": "item", "event_id": "c1", "item_id": "i1", "ts": 0, "schema": "v1", "categories": ["jazz"],
         "created_at": 0},
        {"type": "click", "event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1, "schema": "v1"},
        {"type": "dwell", "event_id": "e2", "user_id": "u1", "item_id": "i1", "ts": 2, "schema": "v1", "seconds": 40},
        {"type": "purchase", "event_id": "e3", "user_id": "u1", "item_id": "i1", "ts": 3, "schema": "v1", "value": 9,
         "currency": "EUR", "context": {"rec_id": "r1", "position": 0}},
    ])
    stream = load_stream(path)
    assert [p["user_id"] for p in stream.profiles] == ["u1"] and [p["item_id"] for p in stream.catalogue] == ["i1"]
    assert [(t, p["event_id"]) for t, p in stream.interactions] == [("click", "e1"), ("dwell", "e2"), ("purchase", "e3")]
    assert stream.events()[2].value == 9.0
    assert "type" not in stream.interactions[0][1]


@pytest.mark.parametrize("rows, message", [
    (["{not json"], ":1: not JSON"),
    ([{"type": "refund", "event_id": "e"}], ":1: each line must be a JSON object with \"type\" one of"),
    ([{"type": "purchase", "event_id": "e", "user_id": "u", "item_id": "i", "ts": 1, "schema": "v1", "value": 3}],
     ":1: invalid purchase event (missing_field)"),
    ([{"type": "click", "event_id": "e", "user_id": "u", "ts": 1, "schema": "v1"}], ":1: invalid click event (missing_field)"),
    ([{"type": "user", "event_id": "p", "user_id": "u", "ts": 0, "schema": "v1", "attributes": {}}],
     "no interaction events"),
])
def test_a_bad_file_is_refused_saying_where_and_why(tmp_path, rows, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ValueError) as info:
        load_stream(str(path))
    assert message in str(info.value) and str(path) in str(info.value)


def test_an_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="not one of .*movielens-100k.* and no such file"):
        load_stream("netflix-prize")
