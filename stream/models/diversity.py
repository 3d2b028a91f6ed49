"""Diversity: maximal marginal relevance (MMR) re-ranking and intra-list diversity (ILD).

MMR (Carbonell and Goldstein, 1998) re-orders a user's candidates greedily: each slot takes the
candidate that maximises

    (1 - λ) · relevance  -  λ · max similarity to the items already picked

where relevance is the score the candidates were ranked by, min-max normalised per user to
[0, 1] (so λ weighs the same against similarity for every user), and similarity is the cosine
of the items' vectors (the engine passes the MF item rows). λ = 0 is the input order exactly;
λ = 1 takes the most relevant item first, then each time the one least like those picked.
The first pick of any λ < 1 is the most relevant item (the maximum over no picks is 0); ties go
to the earlier position.

Many users are re-ranked at once: their pools are one (U, P) matrix and one (U, P, d) array of
vectors; the loop runs over the k slots, each a few NumPy calls over all users (the similarity
of every candidate to the item just picked), so the cost is O(k · U · P · d) and no (P, P)
matrix is formed.

ILD is the mean over a list's pairs of (1 − cosine), the measure ``streamrec evaluate`` reports
and the worker exports (``streamrec_list_diversity``). A zero vector has cosine 0 to everything
(ILD 1 against it); a list of fewer than two items has no pairs: ILD NaN, left out of means.

References
----------
Carbonell, J. and Goldstein, J. (1998). The use of MMR, diversity-based reranking for
reordering documents and producing summaries. SIGIR '98.

Examples
--------
>>> import numpy as np
>>> V = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])  # items 0 and 1 alike, 2 apart
>>> rel = np.array([[3.0, 2.0, 1.0]])
>>> mmr(rel, V[None], k=2, lam=0.0).tolist()
[[0, 1]]
>>> mmr(rel, V[None], k=2, lam=0.7).tolist()
[[0, 2]]
>>> round(float(intra_list_diversity(V[None, [0, 2]])[0]), 3), round(float(intra_list_diversity(V[None, :2])[0]), 3)
(1.0, 0.005)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from stream.models.items import ItemTable

__all__ = ["mmr", "intra_list_diversity", "list_diversity", "flat_diversity", "flat_rows", "table_diversity", "unit_rows", "check_lambda"]


def check_lambda(lam: float, where: str) -> float:
    """``lam`` as a float if it is in [0, 1], else a ValueError naming ``where``.

    >>> check_lambda(0.3, "EngineConfig.diversity")
    0.3
    >>> check_lambda(1.5, "EngineConfig.diversity")
    Traceback (most recent call last):
    ...
    ValueError: EngineConfig.diversity: the MMR weight λ must be in [0, 1] (0: pure relevance), got 1.5
    """
    value = float(lam)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ValueError(f"{where}: the MMR weight λ must be in [0, 1] (0: pure relevance), got {lam!r}")
    return value


def unit_rows(V: np.ndarray) -> np.ndarray:
    """``V`` (..., d) with each vector scaled to length 1 (float32); zero vectors stay zero."""
    V = np.asarray(V, dtype=np.float32)
    norm = np.linalg.norm(V, axis=-1, keepdims=True)
    return V / np.where(norm > 0, norm, 1.0)


def _normalised(relevance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each row's valid relevances min-max scaled to [0, 1] (all 1 when they are equal);
    the other cells 0."""
    R = relevance.astype(np.float64)
    lo = np.where(valid, R, np.inf).min(axis=1, keepdims=True)
    hi = np.where(valid, R, -np.inf).max(axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore"):
        N = np.where(span > 0, (R - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(valid, N, 0.0)


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float,
        valid: np.ndarray | None = None) -> np.ndarray:
    """Each user's MMR order of their pool (see the module docstring).

    Parameters
    ----------
    relevance
        (U, P): each user's pool scores, in the pool's order (best first, as ranked).
    vectors
        (U, P, d): the pool items' vectors (cosine similarity; need not be unit length).
    k
        Slots to fill.
    lam
        λ in [0, 1]; 0 returns the pool's own order.
    valid
        (U, P) bool: which cells hold a candidate (pools shorter than P are padded); default
        every finite relevance.

    Returns
    -------
    (U, min(k, P)) int64 positions into each pool, best first; -1 past a pool's valid cells.
    """
    relevance = np.asarray(relevance)
    if relevance.ndim != 2:
        raise ValueError(f"mmr: relevance must be (users, pool), got shape {relevance.shape}")
    U, P = relevance.shape
    if vectors.shape[:2] != (U, P):
        raise ValueError(f"mmr: vectors must be (users, pool, d) = ({U}, {P}, d), got shape {vectors.shape}")
    lam = check_lambda(lam, "mmr")
    valid = np.isfinite(relevance) if valid is None else np.asarray(valid, dtype=bool)
    slots = min(int(k), P)
    count = valid.sum(axis=1)
    if lam == 0.0:  # pure relevance: the pool's order, its valid cells first
        order = np.argsort(~valid, axis=1, kind="stable")[:, :slots]
        return np.where(np.arange(slots) < count[:, None], order, -1).astype(np.int64)
    gain = np.where(valid, (1.0 - lam) * _normalised(relevance, valid), -np.inf)  # -inf: no candidate
    X = unit_rows(vectors)
    closest = np.zeros((U, P))  # each candidate's max similarity to the picks so far (none yet: 0)
    users = np.arange(U)
    out = np.full((U, slots), -1, dtype=np.int64)
    for t in range(slots):
        score = gain - lam * closest
        pick = np.argmax(score, axis=1)  # ties: the earlier position
        live = np.isfinite(score[users, pick])
        out[:, t] = np.where(live, pick, -1)
        gain[users, pick] = -np.inf  # picked: never again
        sim = np.einsum("upd,ud->up", X, X[users, pick])
        closest = sim if t == 0 else np.maximum(closest, sim, out=closest)  # a max may be below 0
    return out


def intra_list_diversity(vectors: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Each list's mean pairwise (1 − cosine) of its items' vectors.

    Parameters
    ----------
    vectors
        (L, n, d): the items of L lists of up to n items.
    valid
        (L, n) bool: which cells hold an item (shorter lists padded); default all.

    Returns
    -------
    (L,) float64; NaN for a list of fewer than two items.
    """
    X = unit_rows(vectors)
    if X.ndim != 3:
        raise ValueError(f"intra_list_diversity: vectors must be (lists, items, d), got shape {X.shape}")
    L, n, _ = X.shape
    valid = np.ones((L, n), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    X = X * valid[..., None]
    # sum over ordered pairs i != j of x_i . x_j = |sum x|^2 - sum |x|^2
    total = X.sum(axis=1, dtype=np.float64)
    cos_sum = (total * total).sum(axis=1) - (X.astype(np.float64) ** 2).sum(axis=(1, 2))
    m = valid.sum(axis=1).astype(np.float64)
    pairs = m * (m - 1.0)
    with np.errstate(all="ignore"):
        return np.where(pairs > 0, 1.0 - cos_sum / np.where(pairs > 0, pairs, 1.0), np.nan)


def list_diversity(vectors: np.ndarray, lists: Sequence[Sequence[int]]) -> np.ndarray:
    """ILD of many lists of item rows at once, each row a row of ``vectors`` (n_items, d);
    a row outside it (-1: an item the table does not know) is left out of its list.

    >>> V = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> list_diversity(V, [[0, 1, 2], [0, 2], [1, -1]]).round(3).tolist()
    [0.667, 0.0, nan]
    """
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter((r for x in lists for r in x), dtype=np.int64, count=int(lengths.sum()))
    return flat_diversity(vectors, flat, lengths)


def flat_diversity(vectors: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`list_diversity` of lists given end to end: ``rows`` holds them one after another,
    ``lengths`` says how many rows each has."""
    rows, lengths = np.asarray(rows, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    L, n = len(lengths), max(int(lengths.max()) if len(lengths) else 0, 1)
    if not len(vectors):
        return np.full(L, np.nan)
    padded = np.full((L, n), -1, dtype=np.int64)
    padded[np.repeat(np.arange(L), lengths), np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)] = rows
    valid = (padded >= 0) & (padded < len(vectors))
    return intra_list_diversity(np.asarray(vectors)[np.where(valid, padded, 0)], valid)


def flat_rows(table: "ItemTable", lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Lists of item ids as :func:`flat_diversity` takes them: their rows in ``table`` end to end
    (-1: an item it does not know) and each list's length."""
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    return table.known_rows([i for ids in lists for i in ids]), lengths


def table_diversity(table: "ItemTable", lists: Sequence[Sequence[str]]) -> np.ndarray:
    """ILD of lists of item ids in ``table``'s MF item space as it stands (items it does not
    know are left out): what ``evaluate`` reports and the worker exports."""
    return flat_diversity(table.mf.model.item_factors, *flat_rows(table, lists))
