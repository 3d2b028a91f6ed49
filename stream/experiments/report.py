"""An experiment's report: per-variant KPIs, the sequential decision, the SRM check, text and PNG.

``analyse(data)`` replays the looks (a look every ``look_every`` users, plus now) and returns a
``Report`` and its ``History``; ``render_text`` prints the report as a table, ``render_png`` draws
the primary metric's always-valid interval over the looks and every KPI per variant. Pure: no
Faust, Kafka or Redis; matplotlib is imported only by ``render_png``.

Per-variant KPI intervals are fixed-sample normal intervals at ``1 - alpha`` (descriptive, read
once); the decision rests only on the always-valid comparison of the primary metric.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stream.experiments.stats import (
    METRICS, ExperimentData, SequentialPath, SrmResult, look_sizes, moments, normal_ci,
    ratio_estimate, sequential_path, srm_check,
)

__all__ = ["Kpi", "VariantReport", "Comparison", "Report", "History", "analyse", "render_text",
           "render_png"]


@dataclass(frozen=True)
class Kpi:
    """A KPI's estimate with its fixed-sample interval; NaN where undefined (no data yet)."""

    estimate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class VariantReport:
    name: str
    share: float
    assigned: int
    users: int
    kpis: dict[str, Kpi]


@dataclass(frozen=True)
class Comparison:
    """A treatment against the control on the primary metric, always-valid.

    ``verdict`` is "better", "worse" (than the control, in the metric's good direction) or
    "undecided"; ``decided_after_users`` is the number of users with data, all variants
    together, at the first replayed look where the test crossed.
    """

    treatment: str
    metric: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    verdict: str
    decided_after_users: int | None


@dataclass(frozen=True)
class Report:
    experiment: str
    primary: str
    alpha: float
    currency: str
    looks: int
    variants: tuple[VariantReport, ...]
    comparisons: tuple[Comparison, ...]
    srm: SrmResult
    winner: str | None
    decided_after_users: int | None
    decision: str

    def as_dict(self) -> dict:
        """Plain JSON-ready data (NaN and infinities become None)."""
        out = asdict(self)
        out["srm"] = self.srm._asdict()
        return _json_safe(out)


@dataclass(frozen=True)
class History:
    """The replayed looks: one ``SequentialPath`` per treatment, in variant order."""

    metric: str
    alpha: float
    paths: dict[str, SequentialPath]


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _variant_report(variant, alpha: float) -> VariantReport:
    kpis = {}
    for metric in METRICS.values():
        m = moments(variant.column(metric.numerator), variant.column(metric.denominator), [variant.users])
        estimate, variance = ratio_estimate(m)
        low, high = normal_ci(estimate, variance, alpha)
        kpis[metric.name] = Kpi(float(estimate[0]), float(low[0]), float(high[0]))
    return VariantReport(variant.name, variant.share, variant.assigned, variant.users, kpis)


def _verdict(path: SequentialPath, higher_is_better: bool) -> str:
    if path.crossed < 0:
        return "undecided"
    # at the crossing look the interval around the difference excluded 0: its sign is the direction
    treatment_higher = bool(path.difference[path.crossed] > 0)
    return "better" if treatment_higher == higher_is_better else "worse"


def _decide(data: ExperimentData, srm: SrmResult, comparisons: list[Comparison]) -> tuple[str | None, int | None, str]:
    """(winner, users at the decision, sentence). Winner: the best treatment that beat the control,
    or the control when every treatment lost; SRM overrides everything."""
    if srm.alarm:
        return None, None, (f"SRM alarm: results not trustworthy (assignment p={srm.p_value:.2g} "
                            f"< {srm.threshold:g}; observed {list(srm.observed)})")
    better = [c for c in comparisons if c.verdict == "better"]
    sign = 1.0 if METRICS[data.primary].higher_is_better else -1.0
    if better:
        best = max(better, key=lambda c: sign * c.difference)
        return best.treatment, best.decided_after_users, f"winner: {best.treatment} after {best.decided_after_users} users"
    if all(c.verdict == "worse" for c in comparisons):
        users = max(c.decided_after_users for c in comparisons)
        return data.control.name, users, f"winner: {data.control.name} after {users} users"
    return None, None, "no winner yet"


def analyse(data: ExperimentData, look_every: int = 50) -> tuple[Report, History]:
    """The report on ``data`` now, with the looks replayed every ``look_every`` users.

    Every replayed look counts, whether or not someone ran the report then: the mSPRT bounds the
    error over all looks at once, so a winner once declared stays declared (an SRM alarm aside).
    The treatments share ``alpha`` (Bonferroni: each is tested at ``alpha / (variants - 1)``).

    Examples
    --------
    >>> from stream.experiments.stats import COLUMNS, ExperimentData, VariantData
    >>> rng = np.random.default_rng(0)
    >>> def arm(name, ctr, users=2000):
    ...     cols = dict.fromkeys(COLUMNS, np.zeros(users))
    ...     cols.update(shown=np.full(users, 2), clicked=rng.binomial(2, ctr, users))
    ...     return VariantData(name, 0.5, users, **cols)
    >>> report, history = analyse(ExperimentData("demo", (arm("a", 0.10), arm("b", 0.15))))
    >>> report.decision, report.srm.alarm, report.comparisons[0].verdict
    ('winner: b after 1850 users', False, 'better')
    """
    metric = METRICS[data.primary]
    srm = srm_check([v.assigned for v in data.variants], [v.share for v in data.variants], data.srm_threshold)
    users, sizes = look_sizes([v.users for v in data.variants], look_every)
    alpha_each = data.alpha / (len(data.variants) - 1)
    paths, comparisons = {}, []
    for k, treatment in enumerate(data.variants[1:], start=1):
        path = sequential_path(data.control, treatment, metric, users, sizes[:, 0], sizes[:, k],
                               alpha_each, data.mixture_sd)
        paths[treatment.name] = path
        comparisons.append(Comparison(
            treatment.name, metric.name, float(path.difference[-1]), float(path.ci_low[-1]),
            float(path.ci_high[-1]), float(path.p_value[-1]), alpha_each,
            _verdict(path, metric.higher_is_better),
            int(users[path.crossed]) if path.crossed >= 0 else None))
    winner, decided, decision = _decide(data, srm, comparisons)
    report = Report(data.name, metric.name, data.alpha, data.currency, len(users),
                    tuple(_variant_report(v, data.alpha) for v in data.variants), tuple(comparisons),
                    srm, winner, decided, decision)
    return report, History(metric.name, alpha_each, paths)


def _label(metric_name: str, currency: str) -> str:
    label = METRICS[metric_name].label
    return f"{label} ({currency})" if metric_name == "revenue_per_list" else label


def _cell(kpi: Kpi) -> str:
    if not math.isfinite(kpi.estimate):
        return "n/a"
    return f"{kpi.estimate:.4g} [{kpi.ci_low:.4g}, {kpi.ci_high:.4g}]"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render_text(report: Report) -> str:
    """The report as plain text: KPI table (variants as columns), comparisons, SRM, decision."""
    level = f"{100 * (1 - report.alpha):g}%"
    rows = [["", *(v.name for v in report.variants)],
            ["share (declared)", *(f"{v.share:g}" for v in report.variants)],
            ["users assigned", *(str(v.assigned) for v in report.variants)],
            ["users with data", *(str(v.users) for v in report.variants)]]
    rows += [[_label(name, report.currency), *(_cell(v.kpis[name]) for v in report.variants)]
             for name in METRICS]
    lines = [f"experiment {report.experiment}: {report.looks} looks replayed",
             f"KPIs per variant, estimate [{level} CI, fixed-sample, user as the unit]", *_table(rows), "",
             f"{_label(report.primary, report.currency)} vs {report.variants[0].name} "
             "(mixture SPRT, always-valid CI and p-value)"]
    cmp_rows = [["treatment", "difference", "always-valid CI", "p-value", "alpha", "verdict"]]
    cmp_rows += [[c.treatment, f"{c.difference:+.4g}", f"[{c.ci_low:+.4g}, {c.ci_high:+.4g}]",
                  f"{c.p_value:.3g}", f"{c.alpha:g}",
                  c.verdict + (f" after {c.decided_after_users} users" if c.decided_after_users else "")]
                 for c in report.comparisons]
    lines += _table(cmp_rows)
    srm = report.srm
    lines += ["", f"sample ratio: observed {list(srm.observed)}, expected {[round(e, 1) for e in srm.expected]}, "
                  f"chi2={srm.statistic:.3g}, p={srm.p_value:.3g} "
                  f"({'ALARM' if srm.alarm else 'ok'}, threshold {srm.threshold:g})",
              f"decision: {report.decision}"]
    return "\n".join(lines) + "\n"


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("render_png needs matplotlib, which is not installed: "
                           "pip install 'streamrec[report]'") from exc
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _later_extent(history: History, skip: float = 0.1) -> tuple[float, float] | None:
    """y-limits holding every interval after the first ``skip`` of the users (the first looks'
    intervals are so wide they would flatten the rest), with 0 always in view."""
    spans = []
    for p in history.paths.values():
        later = (p.users >= skip * p.users[-1]) & np.isfinite(p.ci_low) & np.isfinite(p.ci_high)
        spans += [p.ci_low[later], p.ci_high[later]]
    values = np.concatenate([np.zeros(1), *spans])
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return None
    pad = 0.1 * (high - low)
    return low - pad, high + pad


def render_png(report: Report, history: History, path: str | Path) -> Path:
    """Draw the primary difference's always-valid CI over looks and the KPIs per variant to ``path``."""
    plt = _pyplot()
    path = Path(path)
    fig = plt.figure(figsize=(12, 10), layout="constrained")
    grid = fig.add_gridspec(3, 3)
    ax = fig.add_subplot(grid[0, :])
    for name, p in history.paths.items():
        finite = np.isfinite(p.ci_low) & np.isfinite(p.ci_high)
        line, = ax.plot(p.users, p.difference, label=f"{name} - {report.variants[0].name}")
        ax.fill_between(p.users[finite], p.ci_low[finite], p.ci_high[finite], alpha=0.2, color=line.get_color())
        if p.crossed >= 0:
            ax.axvline(p.users[p.crossed], linestyle="--", color=line.get_color(),
                       label=f"{name} vs {report.variants[0].name}: decided at {p.users[p.crossed]} users")
    ax.axhline(0.0, color="black", linewidth=0.8)
    limits = _later_extent(history)
    if limits is not None:
        ax.set_ylim(*limits)
    fig.suptitle(f"{report.experiment}: {report.decision}")
    ax.set_title(f"{_label(history.metric, report.currency)} difference vs {report.variants[0].name}, "
                 f"always-valid {100 * (1 - history.alpha):g}% CI over looks")
    ax.set_xlabel("users (total, at each look)")
    ax.legend(loc="best", fontsize="small")
    names = [v.name for v in report.variants]
    for i, metric in enumerate(METRICS):
        axk = fig.add_subplot(grid[1 + i // 3, i % 3])
        kpis = [v.kpis[metric] for v in report.variants]
        est = np.array([k.estimate for k in kpis])
        err = np.array([[k.estimate - k.ci_low for k in kpis], [k.ci_high - k.estimate for k in kpis]])
        axk.bar(names, np.nan_to_num(est), yerr=np.nan_to_num(err), capsize=4,
                color=[f"C{j}" for j in range(len(names))])
        axk.set_title(f"{_label(metric, report.currency)}, {100 * (1 - report.alpha):g}% CI", fontsize="medium")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
