"""The statistics of an experiment: per-user ratio estimates, the mixture SPRT, the SRM check.

Unit of analysis
----------------
The user is the unit of assignment, so the user is the unit of analysis. Every KPI is a ratio of
two per-user sums, ``sum(y_i) / sum(x_i)`` over users ``i`` (list CTR is clicked lists over shown
lists; clicks per user has ``x_i = 1``). Its variance comes from the delta method over those
per-user sums: with ``R = sum y / sum x`` and the per-user residual ``d_i = y_i - R x_i``,
``Var(R) ~= var(d) / (n * mean(x)**2)``. We chose this over averaging per-user ratios because it
keeps the estimand the KPI people read (pooled list CTR, where a user with 40 lists weighs 40
times a user with one), it is defined for users with a zero denominator (no dwell events), and it
still counts a user's correlated lists as one independent draw, which a per-list binomial would
not (that understates the variance whenever users differ).

Sequential test
---------------
The report is meant to be read while the experiment runs, as often as people like. A fixed-n
z-test read at every look inflates the false-positive rate far above alpha, so the comparison of
each treatment with the control uses the mixture sequential probability ratio test (mSPRT) of
Johari, Pekelis, Koomen and Walsh, with its always-valid p-values and confidence intervals. Under
the normal approximation the difference ``D`` of two ratio estimates is ``N(theta, V)``; the
mixture likelihood ratio against ``theta = 0`` with a ``N(0, tau**2)`` mixing distribution is the
ratio of two normal densities, ``Lambda = phi(D; 0, V + tau**2) / phi(D; 0, V)``, which we take
from ``scipy.stats.norm``. ``Lambda`` is a martingale under the null, so by Ville's inequality
``P(sup_n Lambda_n >= 1/alpha) <= alpha``: the p-value ``min_n 1/Lambda_n`` and the running
intersection of the intervals ``{theta : Lambda(theta) < 1/alpha}`` stay valid under continuous
monitoring and at any stopping time. We preferred it to a group sequential design with
Lan-DeMets spending because that needs the looks and the maximum sample size planned in advance,
and here a look is whenever someone runs the report.

``tau`` is set in standard deviations of a user's contribution (``mixture_sd``): the test has
most power for effects of about that size at the sample size reached.

Sample-ratio mismatch
---------------------
Assignment counts are tested against the declared shares with a chi-square goodness-of-fit test
(``scipy.stats.chisquare``); the conventional alarm is p < 0.001.

References
----------
.. [1] Johari, R., Koomen, P., Pekelis, L., Walsh, D. (2022). Always valid inference: continuous
   monitoring of A/B tests. Operations Research 70(3), 1806-1821.
.. [2] Deng, A., Knoblich, U., Lu, J. (2018). Applying the delta method in metric analytics.
   KDD 2018.
.. [3] Fabijan, A. et al. (2019). Diagnosing sample ratio mismatch in online controlled
   experiments. KDD 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

__all__ = [
    "COLUMNS", "METRICS", "Metric", "VariantData", "ExperimentData", "Moments", "moments",
    "ratio_estimate", "normal_ci", "msprt", "SequentialPath", "sequential_path", "look_sizes",
    "SrmResult", "srm_check",
]

COLUMNS = ("shown", "clicked", "clicks", "purchases", "converted", "revenue", "dwell_seconds",
           "dwell_events", "skips")


@dataclass(frozen=True)
class Metric:
    """A KPI: ``sum(numerator) / sum(denominator)`` over users; no denominator means per user."""

    name: str
    label: str
    numerator: str
    denominator: str | None
    higher_is_better: bool = True


METRICS = {m.name: m for m in (
    Metric("list_ctr", "list CTR", "clicked", "shown"),
    Metric("conversion_rate", "conversion rate", "converted", "shown"),
    Metric("revenue_per_list", "revenue per list", "revenue", "shown"),
    Metric("mean_dwell", "mean dwell (s)", "dwell_seconds", "dwell_events"),
    Metric("skip_rate", "skip rate", "skips", "shown", higher_is_better=False),
    Metric("clicks_per_user", "clicks per user", "clicks", None),
)}


@dataclass(frozen=True)
class VariantData:
    """One variant's per-user data, one entry per exposed user, in assignment order.

    ``assigned`` counts every user assigned to the variant, including those who never saw a list
    (they have no entry in the arrays); only the SRM check uses it. The arrays are stored as
    float64 copies.

    Examples
    --------
    >>> v = VariantData("control", 0.5, 3, shown=[2, 1], clicked=[1, 0], clicks=[2, 0],
    ...                 purchases=[0, 0], converted=[0, 0], revenue=[0.0, 0.0],
    ...                 dwell_seconds=[12.0, 0.0], dwell_events=[1, 0], skips=[0, 1])
    >>> v.users, v.column("clicked").tolist(), v.column(None).tolist()
    (2, [1.0, 0.0], [1.0, 1.0])
    """

    name: str
    share: float
    assigned: int
    shown: np.ndarray
    clicked: np.ndarray
    clicks: np.ndarray
    purchases: np.ndarray
    converted: np.ndarray
    revenue: np.ndarray
    dwell_seconds: np.ndarray
    dwell_events: np.ndarray
    skips: np.ndarray

    def __post_init__(self) -> None:
        where = f"variant {self.name!r}"
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"{where}: share {self.share} must be in (0, 1]")
        n = None
        for name in COLUMNS:
            values = np.array(getattr(self, name), dtype=np.float64)
            if values.ndim != 1:
                raise ValueError(f"{where}: {name} must be 1-D (one entry per user), got shape {values.shape}")
            if n is not None and len(values) != n:
                raise ValueError(f"{where}: {name} has {len(values)} users, shown has {n}; "
                                 "every column needs one entry per user")
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(f"{where}: {name} must be finite and non-negative")
            n = len(values)
            object.__setattr__(self, name, values)
        for part in ("clicked", "converted"):
            if np.any(getattr(self, part) > self.shown):
                raise ValueError(f"{where}: {part} exceeds shown for some user; "
                                 f"{part} counts lists, a subset of the lists shown")
        if self.assigned < n:
            raise ValueError(f"{where}: assigned={self.assigned} is less than the {n} users with data")

    @property
    def users(self) -> int:
        """Number of users with data (who saw at least one list)."""
        return len(self.shown)

    def column(self, name: str | None) -> np.ndarray:
        """The per-user column ``name``; ``None`` gives ones (a per-user denominator)."""
        return np.ones(self.users) if name is None else getattr(self, name)


@dataclass(frozen=True)
class ExperimentData:
    """An experiment's data and analysis settings; the first variant is the control.

    Parameters
    ----------
    name : str
        The experiment's name.
    variants : tuple of VariantData
        Control first; declared shares must sum to 1.
    alpha : float
        Type-I error of the sequential test, shared by the treatments (Bonferroni).
    primary : str
        Name of the decision metric in ``METRICS``.
    currency : str
        The currency revenue is expressed in.
    srm_threshold : float
        The SRM alarm fires when the chi-square p-value is below this.
    mixture_sd : float
        The mSPRT mixing standard deviation, in standard deviations of a user's contribution.
    """

    name: str
    variants: tuple[VariantData, ...]
    alpha: float = 0.05
    primary: str = "list_ctr"
    currency: str = "EUR"
    srm_threshold: float = 0.001
    mixture_sd: float = 0.1

    def __post_init__(self) -> None:
        where = f"experiment {self.name!r}"
        object.__setattr__(self, "variants", tuple(self.variants))
        names = [v.name for v in self.variants]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"{where}: needs at least two variants with distinct names, got {names}")
        total = sum(v.share for v in self.variants)
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ValueError(f"{where}: declared shares sum to {total}, not 1")
        if self.primary not in METRICS:
            raise ValueError(f"{where}: primary metric {self.primary!r} is not one of {sorted(METRICS)}")
        for name in ("alpha", "srm_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{where}: {name}={getattr(self, name)} must be in (0, 1)")
        if not self.mixture_sd > 0:
            raise ValueError(f"{where}: mixture_sd={self.mixture_sd} must be positive")

    @property
    def control(self) -> VariantData:
        return self.variants[0]


class Moments(NamedTuple):
    """Per-user sums of a ratio metric at each look: arrays of the same shape."""

    n: np.ndarray
    sy: np.ndarray
    sx: np.ndarray
    syy: np.ndarray
    sxx: np.ndarray
    sxy: np.ndarray


def moments(y: np.ndarray, x: np.ndarray, sizes) -> Moments:
    """Sums over the first ``sizes[k]`` users for every look ``k`` (a size of 0 gives zeros).

    Examples
    --------
    >>> m = moments(np.array([1.0, 0.0, 2.0]), np.array([2.0, 1.0, 2.0]), [1, 3])
    >>> m.n.tolist(), m.sy.tolist(), m.sxy.tolist()
    ([1.0, 3.0], [1.0, 3.0], [2.0, 6.0])
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if np.any(sizes < 0) or np.any(sizes > len(y)):
        raise ValueError(f"look sizes must be between 0 and the {len(y)} users available, got {sizes}")

    def at(values: np.ndarray) -> np.ndarray:
        return np.concatenate(([0.0], np.cumsum(values)))[sizes]

    return Moments(sizes.astype(np.float64), at(y), at(x), at(y * y), at(x * x), at(x * y))


def ratio_estimate(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    """``sum y / sum x`` and its delta-method variance with the user as the unit; NaN if undefined.

    Examples
    --------
    With ``x = 1`` it is the sample mean and its squared standard error:

    >>> y = np.array([1.0, 2.0, 3.0, 6.0])
    >>> est, var = ratio_estimate(moments(y, np.ones(4), [4]))
    >>> float(est[0]), bool(np.isclose(var[0], y.var(ddof=1) / 4))
    (3.0, True)
    """
    n, sy, sx, syy, sxx, sxy = m
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sx > 0, sy / sx, np.nan)
        residual_ss = np.maximum(syy - 2 * ratio * sxy + ratio * ratio * sxx, 0.0)  # sum (y - R x)^2
        variance = np.where(n >= 2, residual_ss / (n - 1) / n / (sx / n) ** 2, np.nan)
    return ratio, variance


def normal_ci(estimate, variance, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-sample two-sided normal interval at level ``1 - alpha``."""
    half = sps.norm.ppf(1 - alpha / 2) * np.sqrt(variance)
    return estimate - half, estimate + half


def msprt(difference, variance, tau2, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One look of the normal mixture SPRT: (p-value at this look, always-valid CI half-width).

    ``1 / Lambda`` with ``Lambda = phi(D; 0, V + tau2) / phi(D; 0, V)``; the half-width solves
    ``Lambda(theta) = 1/alpha`` around ``D``. Take the running minimum of the p-values and the
    running intersection of the intervals over looks (see ``sequential_path``).

    Examples
    --------
    A difference of zero never rejects; a large one does:

    >>> p, half = msprt(np.array([0.0, 0.05]), np.array([1e-4, 1e-4]), 1e-3, 0.05)
    >>> [round(float(v), 4) for v in p], round(float(half[0]), 4)
    ([1.0, 0.0], 0.0304)
    """
    difference, variance = np.asarray(difference, float), np.asarray(variance, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lr = (sps.norm.logpdf(difference, scale=np.sqrt(variance + tau2))
                  - sps.norm.logpdf(difference, scale=np.sqrt(variance)))
        p = np.minimum(1.0, np.exp(-log_lr))
        half = np.sqrt(variance * (variance + tau2) / tau2
                       * (2 * math.log(1 / alpha) + np.log((variance + tau2) / variance)))
    defined = np.isfinite(p) & np.isfinite(half)
    return np.where(defined, p, 1.0), np.where(defined, half, np.inf)


def look_sizes(users: list[int], look_every: int) -> tuple[np.ndarray, np.ndarray]:
    """Replayed looks: (total users at each look, per-variant prefix sizes of shape (looks, variants)).

    A look every ``look_every`` users in total, plus one at the current total. Per-variant sizes
    are proportional to the variants' current sizes (arrays carry no global arrival order), which
    is what hashing assignment produces up to noise.

    Examples
    --------
    >>> total, sizes = look_sizes([6, 4], 4)
    >>> total.tolist(), sizes.tolist()
    ([4, 8, 10], [[2, 2], [5, 3], [6, 4]])
    """
    if look_every < 1:
        raise ValueError(f"look_every={look_every} must be a positive number of users")
    counts = np.asarray(users, dtype=np.int64)
    total = int(counts.sum())
    looks = np.arange(look_every, total, look_every, dtype=np.int64)
    looks = np.append(looks, total)
    sizes = np.floor(looks[:, None] * counts[None, :] / max(total, 1) + 0.5).astype(np.int64)
    return looks, np.minimum(sizes, counts)


class SequentialPath(NamedTuple):
    """One treatment against the control over the replayed looks, always-valid at every look.

    ``p_value`` is the running minimum of the per-look mSPRT p-values, ``ci_low``/``ci_high``
    the running intersection of the per-look intervals; ``crossed`` is the index of the first
    look where ``p_value <= alpha`` (-1 if none).
    """

    users: np.ndarray
    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    crossed: int


def sequential_path(control: VariantData, treatment: VariantData, metric: Metric, users: np.ndarray,
                    sizes_control: np.ndarray, sizes_treatment: np.ndarray, alpha: float,
                    mixture_sd: float) -> SequentialPath:
    """The mSPRT on ``metric(treatment) - metric(control)`` at every replayed look."""
    est_c, var_c = ratio_estimate(moments(control.column(metric.numerator),
                                          control.column(metric.denominator), sizes_control))
    est_t, var_t = ratio_estimate(moments(treatment.column(metric.numerator),
                                          treatment.column(metric.denominator), sizes_treatment))
    difference, variance = est_t - est_c, var_c + var_t
    # tau in the metric's units: mixture_sd per-user standard deviations (pooled over both arms)
    per_user_var = (sizes_control * var_c + sizes_treatment * var_t) / 2
    p_look, half = msprt(difference, variance, mixture_sd ** 2 * per_user_var, alpha)
    p_value = np.minimum.accumulate(p_look)
    low = np.maximum.accumulate(np.where(np.isfinite(half), difference - half, -np.inf))
    high = np.minimum.accumulate(np.where(np.isfinite(half), difference + half, np.inf))
    hits = np.flatnonzero(p_value <= alpha)
    return SequentialPath(users, difference, low, high, p_value, int(hits[0]) if len(hits) else -1)


class SrmResult(NamedTuple):
    """Chi-square goodness of fit of assignment counts against declared shares."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    threshold: float
    alarm: bool


def srm_check(assigned, shares, threshold: float = 0.001) -> SrmResult:
    """Sample-ratio mismatch: alarm when ``chisquare(assigned, shares * total)`` has p < threshold.

    Examples
    --------
    >>> srm_check([5_000, 5_000], [0.5, 0.5]).alarm
    False
    >>> r = srm_check([4_500, 5_500], [0.5, 0.5])
    >>> r.alarm, r.statistic
    (True, 100.0)
    """
    observed = np.asarray(assigned, dtype=np.int64)
    shares = np.asarray(shares, dtype=np.float64)
    total = int(observed.sum())
    expected = shares / shares.sum() * total
    if total == 0:
        return SrmResult(tuple(observed.tolist()), tuple(expected.tolist()), 0.0, 1.0, threshold, False)
    result = sps.chisquare(observed, f_exp=expected)
    p = float(result.pvalue)
    return SrmResult(tuple(observed.tolist()), tuple(expected.tolist()), float(result.statistic), p,
                     threshold, p < threshold)
