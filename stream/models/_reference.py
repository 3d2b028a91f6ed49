"""A plain per-event implementation of OnlineMF's update, for tests only.

Loops over events and factors in Python, in float64, straight from the maths in
docs/MODELS.md. The vectorised model must agree with it on batches where no user and
no item occurs twice (then the batch update and the sequential updates coincide).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["reference_learn"]


def reference_learn(model, user_rows, item_rows, weights) -> dict[str, np.ndarray]:
    """Apply per-event updates (no sampled negatives) to a float64 copy of ``model``'s state.

    Returns the updated arrays ``P, Q, bu, bi, aP, aQ, abu, abi``; the model is untouched.
    """
    nu, ni, k = model.n_users, model.n_items, model.n_factors
    P = [[float(x) for x in row] for row in model._P[:nu]]
    Q = [[float(x) for x in row] for row in model._Q[:ni]]
    bu, bi = [float(x) for x in model._bu[:nu]], [float(x) for x in model._bi[:ni]]
    aP, aQ = [float(x) for x in model._aP[:nu]], [float(x) for x in model._aQ[:ni]]
    abu, abi = [float(x) for x in model._abu[:nu]], [float(x) for x in model._abi[:ni]]
    lr, l2, eps = model.learning_rate, model.l2, 1e-8
    for u, i, w in zip(user_rows, item_rows, weights):
        if w == 0:
            continue
        y, w = (1.0 if w > 0 else 0.0), abs(w)
        s = bu[u] + bi[i]
        for f in range(k):
            s += P[u][f] * Q[i][f]
        s = min(max(s, -30.0), 30.0)
        g = w * (1.0 / (1.0 + math.exp(-s)) - y)
        gp = [g * Q[i][f] + l2 * P[u][f] for f in range(k)]
        gq = [g * P[u][f] + l2 * Q[i][f] for f in range(k)]
        gbu, gbi = g + l2 * bu[u], g + l2 * bi[i]
        aP[u] += sum(x * x for x in gp) / k
        aQ[i] += sum(x * x for x in gq) / k
        abu[u] += gbu * gbu
        abi[i] += gbi * gbi
        for f in range(k):
            P[u][f] -= lr / math.sqrt(aP[u] + eps) * gp[f]
            Q[i][f] -= lr / math.sqrt(aQ[i] + eps) * gq[f]
        bu[u] -= lr / math.sqrt(abu[u] + eps) * gbu
        bi[i] -= lr / math.sqrt(abi[i] + eps) * gbi
    out = dict(P=P, Q=Q, bu=bu, bi=bi, aP=aP, aQ=aQ, abu=abu, abi=abi)
    return {name: np.array(value, dtype=np.float64) for name, value in out.items()}
