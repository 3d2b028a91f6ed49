"""The decision under peeking: A/A false winners, power on a planted difference, SRM override.

Every experiment goes through ``analyse``, the report's own path, which replays a look every 50
users: a false winner is any look at which the report would have named one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps

from stream.experiments.report import analyse
from stream.experiments.stats import METRICS, look_sizes, moments, normal_ci, ratio_estimate
from tests.unit.experiments.simulate import experiment

SEEDS, USERS, LOOK_EVERY, ALPHA = 200, 8000, 50, 0.05


def false_winner_bound(seeds: int, alpha: float) -> float:
    """The 99% upper quantile of Binomial(seeds, alpha), as a rate."""
    return sps.binom.ppf(0.99, seeds, alpha) / seeds


@pytest.fixture(scope="module")
def aa_experiments():
    """Both variants drawn from the same distribution, one experiment per seed."""
    return [experiment(seed, USERS, alpha=ALPHA) for seed in range(SEEDS)]


@pytest.mark.parametrize("primary", sorted(METRICS))
def test_aa_false_winner_rate_under_peeking_at_every_look_is_within_the_binomial_bound(aa_experiments, primary):
    reports = [analyse(replace(data, primary=primary), LOOK_EVERY)[0] for data in aa_experiments]
    rate = sum(r.winner is not None for r in reports) / SEEDS
    bound = false_winner_bound(SEEDS, ALPHA)
    print(f"\nA/A on {primary}: {SEEDS} seeds, {USERS} users, {reports[0].looks} looks each: "
          f"false-winner rate {rate:.3f}, bound {bound:.3f} (alpha {ALPHA})")
    assert rate <= bound


def test_a_fixed_sample_z_test_read_at_the_same_looks_fails_that_bound(aa_experiments):
    # the A/A test has teeth: the test the issue rules out, on the same data and looks, fails it
    false_winners = 0
    for data in aa_experiments:
        control, treatment = data.variants
        _, sizes = look_sizes([control.users, treatment.users], LOOK_EVERY)
        est_c, var_c = ratio_estimate(moments(control.clicked, control.shown, sizes[:, 0]))
        est_t, var_t = ratio_estimate(moments(treatment.clicked, treatment.shown, sizes[:, 1]))
        low, high = normal_ci(est_t - est_c, var_c + var_t, ALPHA)
        false_winners += bool(np.any((low > 0) | (high < 0)))
    rate, bound = false_winners / SEEDS, false_winner_bound(SEEDS, ALPHA)
    print(f"\nA/A with a fixed-n z-test read at every look: false-winner rate {rate:.3f}, bound {bound:.3f}")
    assert rate > bound


def test_planted_lift_is_declared_for_the_treatment_after_a_reported_number_of_users():
    report, history = analyse(experiment(3, USERS, ctrs=(0.10, 0.12)), LOOK_EVERY)
    comparison, = report.comparisons
    print(f"\npower run (list CTR 0.10 vs 0.12): {report.decision}; difference "
          f"{comparison.difference:+.4f} [{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]")
    assert report.winner == "treatment" and comparison.verdict == "better"
    path = history.paths["treatment"]
    assert report.decided_after_users == path.users[path.crossed] < path.users[-1]
    assert report.decision == f"winner: treatment after {report.decided_after_users} users"
    assert comparison.ci_low <= 0.02 <= comparison.ci_high


def test_power_over_seeds_and_users_to_decision():
    reports = [analyse(experiment(1000 + s, USERS, ctrs=(0.10, 0.12)), LOOK_EVERY)[0] for s in range(50)]
    winners = [r.winner for r in reports]
    decided = [r.decided_after_users for r in reports if r.winner == "treatment"]
    print(f"\npower (list CTR 0.10 vs 0.12, {USERS} users): {winners.count('treatment')}/50 declared the treatment, "
          f"{winners.count('control')} the control; users to decision median {np.median(decided):.0f}, "
          f"range {min(decided)}-{max(decided)}")
    assert winners.count("control") == 0
    assert winners.count("treatment") >= 40


def test_a_worse_treatment_makes_the_control_the_winner():
    report, _ = analyse(experiment(5, USERS, ctrs=(0.12, 0.10)), LOOK_EVERY)
    assert report.comparisons[0].verdict == "worse" and report.winner == "control"


def test_lower_is_better_metrics_pick_the_lower_variant():
    # more clicks, fewer skips: on skip rate the treatment is the better one though its rate is lower
    report, _ = analyse(experiment(6, USERS, ctrs=(0.10, 0.16), primary="skip_rate"), LOOK_EVERY)
    assert report.comparisons[0].difference < 0 and report.winner == "treatment"


def test_sample_ratio_mismatch_overrides_a_winner():
    data = experiment(8, USERS, ctrs=(0.10, 0.13), true_shares=(0.45, 0.55))
    report, history = analyse(data, LOOK_EVERY)
    assert history.paths["treatment"].crossed >= 0  # the test did cross...
    assert report.srm.alarm and report.winner is None  # ...but an SRM means it is not believed
    assert report.decision.startswith("SRM alarm: results not trustworthy")


def test_several_treatments_share_alpha_and_the_best_wins():
    data = experiment(9, 12_000, ctrs=(0.10, 0.10, 0.13), true_shares=(1 / 3,) * 3,
                      declared_shares=(1 / 3,) * 3)
    report, _ = analyse(data, LOOK_EVERY)
    assert [c.alpha for c in report.comparisons] == [0.025, 0.025]
    assert report.winner == "treatment2"


@pytest.mark.parametrize("shares", [(0.3, 0.7), (1 / 3, 1 / 3, 1 / 3)], ids=["30-70", "three-arms"])
def test_aa_with_unequal_arms_or_several_treatments_stays_within_the_bound(shares):
    # unequal prefixes in the replayed looks, and alpha shared by two treatments
    reports = [analyse(experiment(seed, USERS, ctrs=(0.10,) * len(shares), true_shares=shares,
                                  declared_shares=shares), LOOK_EVERY)[0] for seed in range(SEEDS)]
    rate, bound = sum(r.winner is not None for r in reports) / SEEDS, false_winner_bound(SEEDS, ALPHA)
    print(f"\nA/A/.. shares {[round(s, 2) for s in shares]}: false-winner rate {rate:.3f}, bound {bound:.3f}")
    assert rate <= bound
