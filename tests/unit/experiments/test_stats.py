"""Known answers for the statistics: delta-method intervals, the mSPRT boundary, SRM, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from stream.experiments.stats import (
    ExperimentData, VariantData, look_sizes, moments, msprt, normal_ci, ratio_estimate, srm_check,
)
from tests.unit.experiments.simulate import experiment, variant_columns


def coverage_band(replicates: int, level: float) -> tuple[float, float]:
    """Central 99% range of the coverage rate of an exact ``level`` interval over ``replicates``."""
    return (sps.binom.ppf(0.005, replicates, level) / replicates,
            sps.binom.ppf(0.995, replicates, level) / replicates)


def test_user_level_delta_interval_covers_list_ctr_and_a_per_list_interval_does_not():
    # Users differ in propensity (Beta, concentration 10) and see ~5 lists each: their lists are
    # correlated. The true pooled list CTR is E[clicked]/E[shown] = 0.1 exactly.
    rng, replicates, truth = np.random.default_rng(7), 1000, 0.1
    user_hits = list_hits = 0
    for _ in range(replicates):
        cols = variant_columns(rng, 1000, truth)
        est, var = ratio_estimate(moments(cols["clicked"], cols["shown"], [1000]))
        low, high = normal_ci(est, var, 0.05)
        user_hits += bool(low[0] <= truth <= high[0])
        lists = cols["shown"].sum()
        naive_low, naive_high = normal_ci(est, est * (1 - est) / lists, 0.05)  # lists as the unit
        list_hits += bool(naive_low[0] <= truth <= naive_high[0])
    lower, upper = coverage_band(replicates, 0.95)
    print(f"\ncoverage of list CTR 95% CI over {replicates} replicates: user unit {user_hits / replicates:.3f}, "
          f"list unit {list_hits / replicates:.3f}; exact-95% band [{lower:.3f}, {upper:.3f}]")
    assert lower <= user_hits / replicates <= upper
    assert list_hits / replicates < lower


def test_msprt_p_value_is_the_inverse_mixture_likelihood_ratio():
    d, v, tau2 = np.array([0.003, -0.02]), np.array([4e-5, 9e-5]), 2.5e-4
    closed_form = np.sqrt(v / (v + tau2)) * np.exp(d ** 2 * tau2 / (2 * v * (v + tau2)))
    p, _ = msprt(d, v, tau2, 0.05)
    assert np.allclose(p, np.minimum(1.0, 1.0 / closed_form))


def test_msprt_interval_edge_is_where_the_test_crosses_alpha():
    v, tau2, alpha = np.array([1e-4, 3e-6]), np.array([5e-4, 1e-5]), 0.05
    _, half = msprt(np.zeros(2), v, tau2, alpha)
    p_at_edge, _ = msprt(half, v, tau2, alpha)
    assert np.allclose(p_at_edge, alpha)
    p_inside, _ = msprt(0.99 * half, v, tau2, alpha)
    assert np.all(p_inside > alpha)


def test_undefined_estimates_neither_reject_nor_crash():
    # no users, one user, no denominator: NaN estimates, p = 1, infinite interval
    empty = moments(np.array([0.0, 1.0]), np.array([0.0, 0.0]), [0, 1, 2])
    est, var = ratio_estimate(empty)
    assert np.all(np.isnan(est))
    p, half = msprt(est, var, 1e-3, 0.05)
    assert np.all(p == 1.0) and np.all(np.isinf(half))


def test_looks_end_at_the_current_counts_and_never_exceed_them():
    users, sizes = look_sizes([1234, 987, 10], 50)
    assert users[-1] == 1234 + 987 + 10 and sizes[-1].tolist() == [1234, 987, 10]
    assert np.all(np.diff(users) > 0) and np.all(np.diff(sizes, axis=0) >= 0)
    assert len(users) == math.ceil((1234 + 987 + 10) / 50)


def srm_users_for_power(planted, declared, threshold: float, power: float) -> int:
    """Smallest total user count at which the chi-square test alarms with ``power``."""
    planted, declared = np.asarray(planted), np.asarray(declared)
    per_user = float(np.sum((planted - declared) ** 2 / declared))  # noncentrality per user
    critical = sps.chi2.ppf(1 - threshold, len(declared) - 1)
    n = 10
    while sps.ncx2.sf(critical, len(declared) - 1, n * per_user) < power:
        n = int(n * 1.05) + 1
    return n


def test_planted_45_55_split_raises_the_srm_alarm_and_true_50_50_does_not():
    needed = srm_users_for_power((0.45, 0.55), (0.5, 0.5), 0.001, 0.999)
    users = 10_000  # a day of a small experiment, above the ~`needed` users that make 45/55 detectable
    assert users >= needed
    planted = experiment(11, users, true_shares=(0.45, 0.55)).variants
    fair = experiment(11, users, true_shares=(0.5, 0.5)).variants
    alarm = srm_check([v.assigned for v in planted], [v.share for v in planted])
    quiet = srm_check([v.assigned for v in fair], [v.share for v in fair])
    print(f"\nSRM: 45/55 detectable with 99.9% power from {needed} users; at {users} users "
          f"planted 45/55 {alarm.observed} p={alarm.p_value:.3g}, true 50/50 {quiet.observed} p={quiet.p_value:.3g}")
    assert alarm.alarm and not quiet.alarm


def test_srm_false_alarm_rate_on_true_splits_is_within_its_binomial_bound():
    seeds, threshold = 400, 0.001
    rng = np.random.default_rng(2024)
    alarms = sum(srm_check(rng.multinomial(10_000, [0.3, 0.7]), [0.3, 0.7], threshold).alarm
                 for _ in range(seeds))
    bound = sps.binom.ppf(0.99, seeds, threshold)
    print(f"\nSRM false alarms on true 30/70 splits: {alarms}/{seeds} (99% binomial bound {bound:g})")
    assert alarms <= bound


def columns(n: int, **overrides) -> dict:
    cols = {name: np.ones(n) for name in ("shown", "clicked", "clicks", "purchases", "converted",
                                          "revenue", "dwell_seconds", "dwell_events", "skips")}
    cols.update(overrides)
    return cols


@pytest.mark.parametrize("change, message", [
    (dict(clicked=np.array([2.0, 0.0])), "clicked exceeds shown"),
    (dict(revenue=np.array([1.0, -3.0])), "revenue must be finite and non-negative"),
    (dict(skips=np.array([1.0])), "skips has 1 users, shown has 2"),
    (dict(dwell_seconds=np.array([1.0, np.nan])), "dwell_seconds must be finite"),
    (dict(shown=np.ones((2, 1))), "shown must be 1-D"),
])
def test_bad_variant_columns_are_refused_with_the_rule(change, message):
    with pytest.raises(ValueError, match=message):
        VariantData("b", 0.5, 2, **columns(2, **change))


def test_bad_experiment_settings_are_refused_with_the_rule():
    a = VariantData("a", 0.5, 2, **columns(2))
    with pytest.raises(ValueError, match="assigned=1 is less than the 2 users"):
        VariantData("a", 0.5, 1, **columns(2))
    with pytest.raises(ValueError, match="shares sum to 1.1"):
        ExperimentData("x", (a, VariantData("b", 0.6, 2, **columns(2))))
    with pytest.raises(ValueError, match="distinct names"):
        ExperimentData("x", (a, a))
    with pytest.raises(ValueError, match="primary metric 'ctr'"):
        ExperimentData("x", (a, VariantData("b", 0.5, 2, **columns(2))), primary="ctr")
