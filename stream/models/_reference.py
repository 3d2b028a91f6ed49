"""A plain per-event implementation of OnlineMF's update, for tests only.

Loops over events and factors in Python, in float64, straight from the maths in
docs/MODELS.md. The vectorised model must agree with it on batches where no user and
no item occurs twice (then the batch update and the sequential updates coincide).
``reference_batch_learn`` is the micro-batch rule itself (rows repeated in a batch sum
their gradients before one Adagrad step), written the same plain way.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["reference_learn", "reference_batch_learn"]


def reference_learn(model, user_rows, item_rows, weights) -> dict[str, np.ndarray]:
    """Apply per-event updates (no sampled negatives) to a float64 copy of ``model``'s state.

    Returns the updated arrays ``P, Q, bu, bi, aP, aQ, abu, abi``; the model is untouched.
    """
    k = model.n_factors
    state = model.state()  # the model's arrays in their serialised form (copies)
    P = [[float(x) for x in row] for row in state["P"]]
    Q = [[float(x) for x in row] for row in state["Q"]]
    bu, bi = [float(x) for x in state["bu"]], [float(x) for x in state["bi"]]
    aP, aQ = [float(x) for x in state["aP"]], [float(x) for x in state["aQ"]]
    abu, abi = [float(x) for x in state["abu"]], [float(x) for x in state["abi"]]
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


def reference_batch_learn(model, user_rows, item_rows, weights) -> dict[str, np.ndarray]:
    """The micro-batch rule of docs/MODELS.md (no sampled negatives), per row, in float64.

    Every gradient comes from the values before the batch; each touched row then takes
    one Adagrad step on its summed gradient, its accumulator growing by the per-example
    squared gradients plus ``max(0, mean(h^2) - mean(g^2))``. Returns the updated arrays
    ``P, Q, bu, bi, aP, aQ, abu, abi``; the model is untouched.
    """
    k = model.n_factors
    state = {name: np.array(a, dtype=np.float64) for name, a in model.state().items()
             if name in ("P", "Q", "bu", "bi", "aP", "aQ", "abu", "abi")}
    P, Q, bu, bi = state["P"], state["Q"], state["bu"], state["bi"]
    lr, l2, eps = model.learning_rate, model.l2, 1e-8
    # (row, factor gradient, bias gradient) per example, for users and for items
    per_user: dict[int, list] = {}
    per_item: dict[int, list] = {}
    for u, i, w in zip(user_rows, item_rows, weights):
        if w == 0:
            continue
        y, w = (1.0 if w > 0 else 0.0), abs(w)
        s = min(max(bu[u] + bi[i] + sum(P[u][f] * Q[i][f] for f in range(k)), -30.0), 30.0)
        g = w * (1.0 / (1.0 + math.exp(-s)) - y)
        per_user.setdefault(u, []).append(([g * Q[i][f] for f in range(k)], g))
        per_item.setdefault(i, []).append(([g * P[u][f] for f in range(k)], g))
    updates = []
    for rows, X, b, A, Ab in ((per_user, "P", "bu", "aP", "abu"), (per_item, "Q", "bi", "aQ", "abi")):
        for r, examples in rows.items():
            G = [sum(e[0][f] for e in examples) for f in range(k)]
            Gb = sum(e[1] for e in examples)
            ex = sum(sum(x * x for x in e[0]) for e in examples)
            exb = sum(e[1] * e[1] for e in examples)
            h = [G[f] + l2 * state[X][r][f] for f in range(k)]
            hb = Gb + l2 * state[b][r]
            a = state[A][r] + max(ex + sum(x * x for x in h) - sum(x * x for x in G), 0.0) / k
            ab = state[Ab][r] + max(exb + hb * hb - Gb * Gb, 0.0)
            updates.append((X, b, A, Ab, r, [state[X][r][f] - lr / math.sqrt(a + eps) * h[f] for f in range(k)],
                            state[b][r] - lr / math.sqrt(ab + eps) * hb, a, ab))
    for X, b, A, Ab, r, x, xb, a, ab in updates:  # every step used the values before the batch
        state[X][r], state[b][r], state[A][r], state[Ab][r] = x, xb, a, ab
    return state
