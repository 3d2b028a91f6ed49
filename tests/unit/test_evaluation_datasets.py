"""Dataset readers and the MovieLens download (no network: pip is faked)."""

import subprocess
import zipfile

import numpy as np
import pytest

from stream.evaluation import datasets

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t5\t300\n2\t10\t2\t100\n1\t11\t3\t100\n"
USER = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t24\tM\ttechnician\t85711\n"
ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n10\tToy Story\t1995\tAnimation Comedy\n11\tOdd\t\t\n"


@pytest.fixture
def ml_dir(tmp_path):
    for name, text in (("ml-100k.inter", INTER), ("ml-100k.user", USER), ("ml-100k.item", ITEM)):
        (tmp_path / name).write_text(text)
    return tmp_path


def test_readers_give_plain_structures(ml_dir):
    inter = datasets.read_inter(ml_dir / "ml-100k.inter")
    assert inter.user_ids.tolist() == ["1", "2", "1"] and inter.ratings.dtype == np.float32
    ordered = inter.time_ordered()
    assert ordered.item_ids.tolist() == ["10", "11", "10"]  # ties keep file order
    assert datasets.read_users(ml_dir / "ml-100k.user")["1"]["occupation"] == "technician"
    items = datasets.read_items(ml_dir / "ml-100k.item")
    assert items["10"] == {"title": "Toy Story", "release_year": 1995, "categories": ["Animation", "Comedy"]}
    assert items["11"]["release_year"] is None and items["11"]["categories"] == []


def test_movielens_events_map_ratings_to_signals(ml_dir):
    events = datasets.movielens_events(ml_dir)
    assert [(e.user_id, e.item_id, e.weight, e.positive) for e in events] == [
        ("2", "10", -1.0, False), ("1", "11", 0.0, False), ("1", "10", 1.0, True)]


def test_cached_files_are_not_downloaded_again(ml_dir, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert datasets.movielens_100k_dir(ml_dir) == ml_dir


def test_download_extracts_from_the_wheel(tmp_path, monkeypatch):
    def fake_pip(cmd, **kwargs):
        dest = cmd[cmd.index("-d") + 1]
        with zipfile.ZipFile(f"{dest}/recbole-1.2.1-py3-none-any.whl", "w") as wheel:
            for name, text in (("ml-100k.inter", INTER), ("ml-100k.user", USER), ("ml-100k.item", ITEM)):
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


def test_simulator_weights():
    assert datasets.simulator_weight("click", {}) == 1.0
    assert datasets.simulator_weight("dwell", {"seconds": 10.0}) == 0.0
    assert datasets.simulator_weight("dwell", {"seconds": 300.0}) == 2.0
    assert datasets.simulator_weight("impression", {"items": ["a"]}) == 0.0
