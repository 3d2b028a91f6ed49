"""NumPy kernels of the micro-batch update: a float32 logistic, scatter-adds, the Adagrad step.

Rows handled here are *extended* factor rows of length ``k + 2``: the factors, then
the bias and a constant 1 (users ``[p_u | b_u | 1]``, items ``[q_i | 1 | b_i]``), so
one dot product of two rows is the whole score ``b_u + b_i + p_u . q_i``, and one
gradient row carries the factor and the bias gradient (docs/MODELS.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["F32", "sigmoid", "run_starts", "add_rows_at", "collapse_repeats", "merge_rows", "adagrad_rows"]

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


def run_starts(sorted_rows: np.ndarray) -> np.ndarray:
    """Positions where a run of equal values starts in a sorted 1-D array.

    Examples
    --------
    >>> run_starts(np.array([2, 2, 5, 7, 7, 7])).tolist()
    [0, 2, 3]
    """
    if len(sorted_rows) == 0:
        return np.empty(0, dtype=np.intp)
    first = np.empty(len(sorted_rows), dtype=bool)
    first[0] = True
    np.not_equal(sorted_rows[1:], sorted_rows[:-1], out=first[1:])
    return np.flatnonzero(first)


def add_rows_at(out: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """``out[rows[j]] += values[j]`` for every j, repeated rows included (2-D, C-contiguous).

    ``np.add.at`` over 2-D rows runs an inner loop per element; on the flattened arrays it
    takes NumPy's fast 1-D path (about 10x faster for 34-column float32 rows).

    Examples
    --------
    >>> out = np.zeros((2, 2), dtype=F32)
    >>> add_rows_at(out, np.array([1, 1]), np.ones((2, 2), dtype=F32))
    >>> out.tolist()
    [[0.0, 0.0], [2.0, 2.0]]
    """
    if not out.flags.c_contiguous:
        raise ValueError("add_rows_at: out must be C-contiguous (it is updated through a flat view)")
    width = out.shape[1]
    flat = (rows.astype(np.intp)[:, None] * width + np.arange(width)).ravel()
    np.add.at(out.reshape(-1), flat, np.ascontiguousarray(values, dtype=out.dtype).reshape(-1))


def collapse_repeats(rows: np.ndarray, grad: np.ndarray, k: int, scratch: np.ndarray):
    """Sum the gradient rows of a row index that occurs more than once, in place.

    ``rows`` (n,) need not be sorted; ``grad`` is (n, k + 2); ``scratch`` is an int array
    indexable by every row (its contents are overwritten). Afterwards every occurrence of
    a row holds the row's summed gradient, so an update computed per occurrence is the
    same for all of them and writing them all back is well-defined. Returns, per
    occurrence, ``sum_e |g_e[:k]|^2 - |sum_e g_e[:k]|^2`` and the same for column ``k``
    (two (n,) arrays, zero for rows seen once), or None when no row repeats. The last
    occurrence of each row collects the others in event order (deterministic).

    Examples
    --------
    >>> g = np.array([[1, 0, 1, 0], [0, 2, 1, 0], [3, 3, 1, 0]], dtype=F32)
    >>> delta_f, delta_b = collapse_repeats(np.array([4, 9, 4]), g, 2, np.zeros(10, dtype=np.intp))
    >>> g[0].tolist(), g[2].tolist(), delta_f.tolist(), delta_b.tolist()
    ([4.0, 3.0, 2.0, 0.0], [4.0, 3.0, 2.0, 0.0], [-6.0, 0.0, -6.0], [-2.0, 0.0, -2.0])
    """
    n = len(rows)
    order = np.arange(n)
    scratch[rows] = order
    last = scratch[rows]  # the last occurrence of each event's row
    is_dup = last != order
    dups = np.flatnonzero(is_dup)
    if len(dups) == 0:
        return None
    target = last[dups]
    in_group = is_dup.copy()
    in_group[target] = True
    members = np.flatnonzero(in_group)  # every occurrence of a repeated row
    heads = members[~is_dup[members]]
    gm = grad[members]
    delta_f, delta_b = np.zeros(n, dtype=F32), np.zeros(n, dtype=F32)
    np.add.at(delta_f, last[members], np.einsum("ij,ij->i", gm[:, :k], gm[:, :k]))
    np.add.at(delta_b, last[members], np.square(gm[:, k]))
    add_rows_at(grad, target, grad[dups])
    gh = grad[heads]
    delta_f[heads] -= np.einsum("ij,ij->i", gh[:, :k], gh[:, :k])
    delta_b[heads] -= np.square(gh[:, k])
    grad[dups] = grad[target]
    delta_f[dups] = delta_f[target]
    delta_b[dups] = delta_b[target]
    return delta_f, delta_b


def adagrad_rows(x: np.ndarray, acc: np.ndarray, acc_b: np.ndarray, grad: np.ndarray, k: int, bias_col: int,
                 learning_rate: float, l2: float, delta=None) -> None:
    """One Adagrad step with L2 on gathered extended rows, in place on ``x``, ``acc``, ``acc_b``.

    ``x`` (r, k + 2) rows, ``acc`` and ``acc_b`` (r,) accumulators (factor row, bias),
    ``grad`` (r, k + 2) each row's summed gradient (overwritten); ``delta`` a pair of (r,)
    arrays, the per-example squared norms minus the squared sum (see
    :func:`collapse_repeats`; None means one example per row). The column that is neither
    factor nor bias holds the constant 1 and is left as it is. Rule (docs/MODELS.md):
    ``h = g + l2 x``, ``A += max(delta + |h|^2, 0) / k`` (bias: without ``/ k``),
    ``x -= lr / sqrt(A + eps) h``.

    Examples
    --------
    >>> x = np.array([[1.0, 0.5, 1.0]], dtype=F32); acc, acc_b = np.zeros(1, F32), np.zeros(1, F32)
    >>> adagrad_rows(x, acc, acc_b, np.array([[2.0, 1.0, 9.0]], dtype=F32), 1, 1, 0.1, 0.0)
    >>> x.astype(float).round(4).tolist(), acc.tolist(), acc_b.tolist()
    ([[0.9, 0.4, 1.0]], [4.0], [1.0])
    """
    lr, eps = F32(learning_rate), F32(1e-8)
    grad += F32(l2) * x
    hb = grad[:, bias_col].copy()
    sq = np.einsum("ij,ij->i", grad[:, :k], grad[:, :k])
    sqb = hb * hb
    if delta is not None:
        sq += delta[0]
        np.maximum(sq, 0.0, out=sq)
        sqb += delta[1]
        np.maximum(sqb, 0.0, out=sqb)
    sq *= F32(1.0 / k)
    acc += sq
    acc_b += sqb
    step = acc + eps
    np.sqrt(step, out=step)
    np.divide(lr, step, out=step)
    grad *= step[:, None]
    step_b = acc_b + eps
    np.sqrt(step_b, out=step_b)
    grad[:, bias_col] = hb * np.divide(lr, step_b, out=step_b)
    grad[:, 2 * k + 1 - bias_col] = 0.0  # the constant column (k + 1 for users, k for items)
    x -= grad


def merge_rows(rows: np.ndarray, grad: np.ndarray, extra: np.ndarray,
               new_rows: np.ndarray, new_grad: np.ndarray, new_extra: np.ndarray):
    """Add gradient rows ``new_*`` (rows may repeat) to unique sorted ``rows``; append the others.

    Returns ``(rows, grad, extra)``: unique rows (sorted ones first, then new ones),
    (r, width) summed gradients and (r,) summed extras.

    Examples
    --------
    >>> r, g, e = merge_rows(np.array([2, 5]), np.ones((2, 1), F32), np.ones(2, F32),
    ...                      np.array([5, 7, 7]), np.ones((3, 1), F32), np.ones(3, F32))
    >>> r.tolist(), g.ravel().tolist(), e.tolist()
    ([2, 5, 7], [1.0, 2.0, 2.0], [1.0, 2.0, 2.0])
    """
    at = np.minimum(np.searchsorted(rows, new_rows), max(len(rows) - 1, 0))
    hit = rows[at] == new_rows if len(rows) else np.zeros(len(new_rows), dtype=bool)
    if hit.any():
        add_rows_at(grad, at[hit], new_grad[hit])
        np.add.at(extra, at[hit], new_extra[hit])
    if hit.all():
        return rows, grad, extra
    miss = np.flatnonzero(~hit)
    miss = miss[np.argsort(new_rows[miss], kind="stable")]  # (np.unique is ~40 us even on 16 values)
    starts = run_starts(new_rows[miss])
    more = new_rows[miss][starts]
    more_grad = np.add.reduceat(new_grad[miss], starts, axis=0)
    more_extra = np.add.reduceat(new_extra[miss], starts)
    return np.concatenate([rows, more]), np.concatenate([grad, more_grad]), np.concatenate([extra, more_extra])
