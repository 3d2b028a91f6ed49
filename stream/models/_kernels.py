"""NumPy kernels of the micro-batch update: a float32 logistic function and the scatter-add."""

from __future__ import annotations

import numpy as np

__all__ = ["F32", "sigmoid", "segment_sum"]

F32 = np.float32


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, float32, computed in place on ``x`` (pass a temporary).

    Examples
    --------
    >>> sigmoid(np.array([0.0, 100.0], dtype=F32)).round(3).tolist()
    [0.5, 1.0]
    """
    x = np.asarray(x, dtype=F32)
    np.clip(x, -30.0, 30.0, out=x)
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


def segment_sum(rows: np.ndarray, values: np.ndarray, presorted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``values`` over equal ``rows``: the scatter-add step of a micro-batch.

    Returns the sorted unique rows and the summed values (row-aligned). A stable sort
    plus ``np.add.reduceat`` keeps the summation order fixed, so the result is
    bit-for-bit reproducible. ``presorted`` skips the sort when rows are already sorted.

    Examples
    --------
    >>> rows, sums = segment_sum(np.array([3, 1, 3]), np.array([[1.0], [2.0], [4.0]], dtype=F32))
    >>> rows.tolist(), sums.ravel().tolist()
    ([1, 3], [2.0, 5.0])
    """
    if not presorted:
        order = np.argsort(rows, kind="stable")
        rows, values = rows[order], values[order]
    first = np.concatenate(([True], rows[1:] != rows[:-1]))
    n_unique = int(np.count_nonzero(first))
    if 2 * n_unique < len(rows):  # many repeats (popular items): one reduce per run
        return rows[first], np.add.reduceat(values, np.flatnonzero(first), axis=0)
    # mostly distinct rows (users): keep the first of each run, add the few repeats to it
    out = values[first]
    repeats = ~first
    np.add.at(out, np.cumsum(first)[repeats] - 1, values[repeats])
    return rows[first], out
