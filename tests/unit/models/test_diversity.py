"""Diversity (stream/models/diversity.py): MMR re-ranking and intra-list diversity, known answers
and a plain per-user loop as the reference of the vectorised MMR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.models.diversity import check_lambda, intra_list_diversity, list_diversity, mmr


def _reference_mmr(relevance, vectors, k, lam, valid):
    """MMR written out for one user at a time, as in the paper: no tricks."""
    out = []
    for rel, V, ok in zip(relevance, vectors, valid):
        cand = [p for p in range(len(rel)) if ok[p]]
        if lam == 0.0:
            out.append(cand[:k] + [-1] * (min(k, len(rel)) - len(cand[:k])))
            continue
        lo, hi = min(rel[p] for p in cand) if cand else 0, max(rel[p] for p in cand) if cand else 0
        norm = {p: (rel[p] - lo) / (hi - lo) if hi > lo else 1.0 for p in cand}

        def cos(a, b):
            na, nb = np.linalg.norm(V[a]), np.linalg.norm(V[b])
            return float(V[a] @ V[b] / (na * nb)) if na > 0 and nb > 0 else 0.0

        picked = []
        while len(picked) < min(k, len(rel)):
            left = [p for p in cand if p not in picked]
            if not left:
                picked.append(-1)
                continue
            scores = [(1 - lam) * norm[p] - lam * max([cos(p, q) for q in picked if q >= 0], default=0.0)
                      for p in left]
            picked.append(left[int(np.argmax(scores))])  # ties: the earlier position
        out.append(picked)
    return np.array(out)


def _random_pools(seed, U=7, P=12, d=5):
    rng = np.random.default_rng(seed)
    relevance = np.sort(rng.normal(size=(U, P)), axis=1)[:, ::-1].copy()
    vectors = rng.normal(size=(U, P, d)).astype(np.float32)
    lengths = rng.integers(0, P + 1, size=U)
    lengths[0] = P
    valid = np.arange(P) < lengths[:, None]
    return relevance, vectors, valid


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lambda_zero_is_the_input_order_exactly(seed):
    relevance, vectors, valid = _random_pools(seed)
    relevance = np.random.default_rng(seed).permutation(relevance.T).T  # not even sorted: still the input order
    got = mmr(relevance, vectors, 5, 0.0, valid)
    for row, ok in zip(got, valid):
        n = min(5, int(ok.sum()))
        assert row[:n].tolist() == list(range(n)) and (row[n:] == -1).all()


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
@pytest.mark.parametrize("seed", [3, 4])
def test_the_vectorised_mmr_equals_a_plain_loop(lam, seed):
    relevance, vectors, valid = _random_pools(seed)
    got = mmr(relevance, vectors, 6, lam, valid)
    np.testing.assert_array_equal(got, _reference_mmr(relevance, vectors.astype(np.float64), 6, lam, valid))


def test_lambda_one_takes_the_best_item_then_the_least_alike():
    # three clusters; the pool lists cluster A first (the most relevant), then B, then C
    A, B, C = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    jitter = np.random.default_rng(0).normal(scale=0.01, size=(9, 3))
    V = (np.stack([A, A, A, A, B, B, C, C, C]) + jitter)[None]
    rel = np.linspace(1.0, 0.1, 9)[None]
    picks = mmr(rel, V, 3, 1.0)[0].tolist()
    assert picks[0] == 0  # the most relevant first
    assert all(p >= 4 for p in picks[1:]) and sorted(p >= 6 for p in picks[1:]) == [False, True]  # one of B, one of C
    assert mmr(rel, V, 3, 0.0)[0].tolist() == [0, 1, 2]  # relevance alone: all of cluster A
    # λ = 1 ignores relevance: the second pick is the pool's least similar item to the first
    X = V[0] / np.linalg.norm(V[0], axis=1, keepdims=True)
    assert picks[1] == int(np.argmin(X[1:] @ X[0])) + 1


def test_mmr_checks_its_inputs():
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        mmr(np.zeros((1, 3)), np.zeros((1, 3, 2)), 2, 1.5)
    with pytest.raises(ValueError, match="vectors must be"):
        mmr(np.zeros((1, 3)), np.zeros((1, 4, 2)), 2, 0.5)
    with pytest.raises(ValueError, match="relevance must be"):
        mmr(np.zeros(3), np.zeros((1, 3, 2)), 2, 0.5)


def test_padding_and_invalid_cells_are_never_picked():
    relevance, vectors, valid = _random_pools(5)
    got = mmr(relevance, vectors, 12, 0.6, valid)
    for row, ok in zip(got, valid):
        n = int(ok.sum())
        assert sorted(row[:n].tolist()) == list(range(n)) and (row[n:] == -1).all()


def test_intra_list_diversity_known_vectors():
    V = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]],   # pairs: 1, 2, 1 -> 4/3
                  [[2.0, 0.0], [1.0, 0.0], [3.0, 0.0]],    # the same direction: 0
                  [[1.0, 0.0], [0.0, 0.0], [0.0, 5.0]]])   # a zero vector is unlike anything: 1
    assert intra_list_diversity(V).tolist() == pytest.approx([4 / 3, 0.0, 1.0])
    short = intra_list_diversity(V, valid=np.array([[True, True, False], [True, False, False], [True, True, True]]))
    assert short[0] == pytest.approx(1.0) and math.isnan(short[1]) and short[2] == pytest.approx(1.0)


def test_list_diversity_takes_rows_and_leaves_out_unknown_items():
    table = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    got = list_diversity(table, [[0, 1], [0, -1, 1], [2], [], [0, 7, 2]])
    assert got[0] == pytest.approx(1.0) and got[1] == pytest.approx(1.0)
    assert math.isnan(got[2]) and math.isnan(got[3])
    assert got[4] == pytest.approx(1 - 1 / math.sqrt(2))


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), float("inf")])
def test_a_bad_lambda_is_refused_with_where_and_why(bad):
    with pytest.raises(ValueError, match=r"EngineConfig: diversity: the MMR weight λ must be in \[0, 1\]"):
        check_lambda(bad, "EngineConfig: diversity")
