"""MovieLens-100K for evaluation and replay: taken out of the recbole wheel, read as plain arrays.

The contract events of a data set (what evaluation and replay use) are
:mod:`stream.evaluation.streams`' and :mod:`producers.replay`'.

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
