"""Datasets for evaluation and replay: MovieLens-100K (from the recbole wheel) and the simulator.

Dependency-light on purpose (standard library + NumPy): the replay producer imports it.
MovieLens-100K is taken out of the ``recbole`` wheel with ``pip download --no-deps``
(recbole itself and its dependencies, torch among them, are never installed) and
cached outside the repository, in ``$STREAMREC_CACHE_DIR/datasets/ml-100k``
(default ``~/.cache/streamrec/datasets/ml-100k``).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = [
    "RECBOLE_VERSION",
    "cache_root",
    "movielens_100k_dir",
    "read_inter",
    "read_users",
    "read_items",
    "Interactions",
    "movielens_events",
    "simulator_events",
    "EvalEvent",
    "simulator_weight",
]

RECBOLE_VERSION = "1.2.1"
_ML_FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")


def cache_root() -> pathlib.Path:
    """The cache root of the settings (``STREAMREC_CACHE_DIR``, default ``~/.cache/streamrec``)."""
    from stream.config import Settings

    return Settings().cache_path


def movielens_100k_dir(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Directory holding ml-100k.inter/.user/.item, downloading them once if needed.

    Parameters
    ----------
    cache_dir
        Target directory; default ``cache_root() / "datasets" / "ml-100k"``.

    Raises
    ------
    RuntimeError
        When pip cannot fetch the wheel (no network, no index) or the wheel lacks the files.
    """
    target = pathlib.Path(cache_dir) if cache_dir is not None else cache_root() / "datasets" / "ml-100k"
    if all((target / name).is_file() for name in _ML_FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    print(
        f"streamrec: downloading MovieLens-100K (recbole=={RECBOLE_VERSION} wheel, no dependencies) into {target} ...",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="streamrec-recbole-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"recbole=={RECBOLE_VERSION}", "--no-deps",
               "--only-binary=:all:", "-d", tmp, "-q"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(pathlib.Path(tmp).glob("recbole-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(
                f"movielens_100k_dir: could not download the recbole wheel with `{' '.join(cmd)}` "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-500:]}\n"
                "Check network access to the package index, or place ml-100k.inter/.user/.item in "
                f"{target} by hand."
            )
        prefix = "recbole/dataset_example/ml-100k/"
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [n for n in wheel.namelist() if n.startswith(prefix) and not n.endswith("/")]
            missing = [name for name in _ML_FILES if prefix + name not in members]
            if missing:
                raise RuntimeError(f"movielens_100k_dir: {wheels[0].name} lacks {missing} under {prefix}")
            for name in members:
                (target / name[len(prefix):]).write_bytes(wheel.read(name))
    print(f"streamrec: MovieLens-100K ready in {target}", file=sys.stderr, flush=True)
    return target


def _rows(path: pathlib.Path) -> Iterator[list[str]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        next(fh)  # recbole header: name:type, tab separated
        for line in fh:
            line = line.rstrip("\n")
            if line:
                yield line.split("\t")


@dataclass(frozen=True)
class Interactions:
    """Rating events in file order: user and item ids (unicode arrays), ratings, timestamps."""

    user_ids: np.ndarray  # <U, (n,)
    item_ids: np.ndarray  # <U, (n,)
    ratings: np.ndarray  # float32, (n,)
    timestamps: np.ndarray  # float64 epoch seconds, (n,)

    def __len__(self) -> int:
        return len(self.ratings)

    def time_ordered(self) -> "Interactions":
        """Sorted by timestamp; ties keep file order (stable sort)."""
        order = np.argsort(self.timestamps, kind="stable")
        return Interactions(self.user_ids[order], self.item_ids[order], self.ratings[order], self.timestamps[order])


def read_inter(path: str | os.PathLike) -> Interactions:
    """Read a recbole ``.inter`` file (user, item, rating, timestamp) in file order."""
    users, items, ratings, stamps = [], [], [], []
    for row in _rows(pathlib.Path(path)):
        users.append(row[0])
        items.append(row[1])
        ratings.append(float(row[2]))
        stamps.append(float(row[3]))
    return Interactions(
        np.array(users, dtype=np.str_), np.array(items, dtype=np.str_),
        np.array(ratings, dtype=np.float32), np.array(stamps, dtype=np.float64),
    )


def read_users(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Read a ``.user`` file: user id -> {"age", "gender", "occupation", "zip_code"} (strings)."""
    return {
        row[0]: {"age": row[1], "gender": row[2], "occupation": row[3], "zip_code": row[4]}
        for row in _rows(pathlib.Path(path))
    }


def read_items(path: str | os.PathLike) -> dict[str, dict[str, object]]:
    """Read a ``.item`` file: item id -> {"title": str, "release_year": int | None, "categories": [str]}."""
    out: dict[str, dict[str, object]] = {}
    for row in _rows(pathlib.Path(path)):
        row += [""] * (4 - len(row))
        year = row[2].strip()
        out[row[0]] = {
            "title": row[1],
            "release_year": int(year) if year.isdigit() else None,
            "categories": row[3].split() if row[3] else [],
        }
    return out


@dataclass(frozen=True)
class EvalEvent:
    """One event of an evaluation stream: ``weight`` > 0 positive, < 0 negative, 0 neutral."""

    user_id: str
    item_id: str
    weight: float
    ts: float
    positive: bool


def movielens_events(
    cache_dir: str | os.PathLike | None = None,
    positive_threshold: float = 4.0,
    negative_threshold: float = 2.0,
    neutral_weight: float = 0.0,
    negative_weight: float = 1.0,
    limit: int | None = None,
) -> list[EvalEvent]:
    """MovieLens-100K as a time-ordered evaluation stream (ties in file order).

    A rating >= ``positive_threshold`` is a positive (weight 1, rating 5 too); a rating
    <= ``negative_threshold`` is learned as a skip (weight ``-negative_weight``); the
    rest is neutral (weight ``neutral_weight``, never a trial).
    """
    inter = read_inter(movielens_100k_dir(cache_dir) / "ml-100k.inter").time_ordered()
    events = []
    for u, i, r, t in zip(inter.user_ids.tolist(), inter.item_ids.tolist(), inter.ratings.tolist(),
                          inter.timestamps.tolist()):
        if r >= positive_threshold:
            events.append(EvalEvent(u, i, 1.0, t, True))
        elif r <= negative_threshold:
            events.append(EvalEvent(u, i, -negative_weight, t, False))
        else:
            events.append(EvalEvent(u, i, neutral_weight, t, False))
        if limit is not None and len(events) >= limit:
            break
    return events


def simulator_weight(etype: str, payload: dict, dwell_threshold: float = 30.0, dwell_cap: float = 2.0) -> float:
    """Evaluation weight of a simulator event: > 0 positive, < 0 negative, 0 neutral.

    click 1; dwell of at least ``dwell_threshold`` seconds ``min(seconds / dwell_threshold, dwell_cap)``
    (shorter dwells 0); skip -1; impression 0.

    Examples
    --------
    >>> simulator_weight("dwell", {"seconds": 45.0}), simulator_weight("skip", {"after_seconds": 2.0})
    (1.5, -1.0)
    """
    if etype == "click":
        return 1.0
    if etype == "dwell":
        seconds = float(payload.get("seconds", 0.0))
        return float(min(seconds / dwell_threshold, dwell_cap)) if seconds >= dwell_threshold else 0.0
    if etype == "skip":
        return -1.0
    return 0.0


def simulator_events(
    n_events: int = 100_000,
    n_users: int = 2000,
    n_items: int = 500,
    seed: int = 7,
    dwell_threshold: float = 30.0,
):
    """Events from ``producers.simulator.World`` plus the world (for the oracle).

    Clicks and dwells of at least ``dwell_threshold`` seconds are positives (dwell weight
    grows with the seconds, capped, see :func:`simulator_weight`),
    skips are negatives, impressions are left out (they carry no single item).

    Returns
    -------
    (list[EvalEvent], World)
    """
    from producers.simulator import World, WorldConfig  # the lead's module; imported lazily

    world = World(WorldConfig(n_users=n_users, n_items=n_items, n_segments=4, n_categories=8, seed=seed))
    events = []
    for etype, payload in world.generate(n_events, start_ts=1_700_000_000.0):
        if etype == "impression":
            continue
        w = simulator_weight(etype, payload, dwell_threshold=dwell_threshold)
        events.append(EvalEvent(payload["user_id"], payload["item_id"], w, float(payload["ts"]), w > 0))
    return events, world
