"""Synthetic experiments for the statistics tests: users with their own click propensity.

Each user sees ``1 + Poisson(4)`` lists and clicks each with a propensity drawn from a Beta with
the variant's mean list CTR (concentration 10), so a user's lists are correlated: the case where
analysing lists instead of users goes wrong.
"""

from __future__ import annotations

import numpy as np

from stream.experiments.stats import ExperimentData, VariantData


def variant_columns(rng: np.random.Generator, users: int, ctr: float) -> dict[str, np.ndarray]:
    """Per-user columns for ``users`` exposed users whose mean list CTR is ``ctr``."""
    shown = 1 + rng.poisson(4.0, users)
    propensity = rng.beta(10 * ctr, 10 * (1 - ctr), users)
    clicked = rng.binomial(shown, propensity)
    clicks = clicked + rng.poisson(0.5 * clicked)
    converted = rng.binomial(clicked, 0.1)
    purchases = converted + rng.poisson(0.2 * converted)
    dwell_events = clicks
    return {
        "shown": shown, "clicked": clicked, "clicks": clicks, "purchases": purchases,
        "converted": converted, "revenue": rng.gamma(2.0, 15.0, users) * purchases,
        "dwell_seconds": rng.gamma(2.0, 20.0, users) * dwell_events, "dwell_events": dwell_events,
        "skips": rng.binomial(shown - clicked, 0.3),
    }


def experiment(seed: int, users: int, ctrs=(0.10, 0.10), true_shares=(0.5, 0.5),
               declared_shares=(0.5, 0.5), exposed=0.9, **settings) -> ExperimentData:
    """``users`` assigned by ``true_shares``; ``exposed`` of them see lists; declared shares as given."""
    rng = np.random.default_rng(seed)
    assigned = rng.multinomial(users, true_shares)
    names = ["control"] + [f"treatment{i}" if len(ctrs) > 2 else "treatment" for i in range(1, len(ctrs))]
    variants = []
    for name, share, n, ctr in zip(names, declared_shares, assigned, ctrs):
        seen = rng.binomial(n, exposed)
        variants.append(VariantData(name, share, int(n), **variant_columns(rng, seen, ctr)))
    return ExperimentData(f"sim-{seed}", tuple(variants), **settings)
