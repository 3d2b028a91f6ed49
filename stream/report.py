"""`streamrec report`: segment KPIs and the online hit rate over time, from Prometheus, as a PNG,
with drift detections marked, for people who would rather look than read.

    streamrec report --minutes 60 --out streamrec-report.png

It asks Prometheus's range API (STREAMREC_PROMETHEUS_PORT on localhost, or --prometheus URL)
for the same expressions the dashboards use, and draws one panel per KPI, one line per segment;
a dashed vertical line marks each moment a drift detector turned active, labelled with the
segment and signal.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

__all__ = ["PANELS", "query_range", "drift_marks", "render", "main_report"]

PANELS = (
    ("Click-through rate", 'sum by (segment) (rate(streamrec_events_total{type="click"}[1m])) / '
                           'sum by (segment) (rate(streamrec_events_total{type="impression"}[1m]))'),
    ("Skip rate", 'sum by (segment) (rate(streamrec_events_total{type="skip"}[1m])) / '
                  '(sum by (segment) (rate(streamrec_events_total{type="skip"}[1m])) + '
                  'sum by (segment) (rate(streamrec_events_total{type="dwell"}[1m])))'),
    ("Online hit rate@10 (prequential)", "sum by (segment) (rate(streamrec_prequential_hits_total[1m])) / "
                                         "sum by (segment) (rate(streamrec_prequential_trials_total[1m]))"),
    ("Events applied per second", "sum by (segment) (rate(streamrec_events_total[1m]))"),
)
DRIFT = "max by (segment, signal) (streamrec_drift_active)"


def query_range(base_url: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    """Prometheus /api/v1/query_range: a list of {"metric": {...}, "values": [[t, "v"], ...]}."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base_url}/api/v1/query_range?{params}", timeout=30) as resp:
        answer = json.loads(resp.read())
    if answer.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {expr!r}: {answer.get('error')}")
    return answer["data"]["result"]


def drift_marks(series: list[dict]) -> list[tuple[float, str]]:
    """(time, "segment/signal") where a drift_active series steps from 0 (or nothing) to 1."""
    marks = []
    for s in series:
        label = f"{s['metric'].get('segment', '?')}/{s['metric'].get('signal', '?')}"
        previous = 0.0
        for t, v in s["values"]:
            value = float(v)
            if value >= 1.0 and previous < 1.0:
                marks.append((float(t), label))
            previous = value
    return sorted(marks)


def render(panels: list[tuple[str, list[dict]]], marks: list[tuple[float, str]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from datetime import datetime, timezone

    def when(t: float):
        return datetime.fromtimestamp(t, tz=timezone.utc)

    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.0 * len(panels)), sharex=True, squeeze=False)
    for ax, (name, series) in zip(axes[:, 0], panels):
        for s in sorted(series, key=lambda s: s["metric"].get("segment", "")):
            raw = [(float(t), float(v)) for t, v in s["values"] if v not in ("NaN", "+Inf", "-Inf")]
            if not raw:
                continue
            # a gap in the data stays a gap: no straight line drawn across it
            gaps = sorted(b[0] - a[0] for a, b in zip(raw, raw[1:])) or [0.0]
            usual = gaps[len(gaps) // 2]
            xs, ys = [], []
            for k, (t, v) in enumerate(raw):
                if k and usual and t - raw[k - 1][0] > 2.5 * usual:
                    xs.append(when((t + raw[k - 1][0]) / 2))
                    ys.append(float("nan"))
                xs.append(when(t))
                ys.append(v)
            ax.plot(xs, ys, label=s["metric"].get("segment", "all"))
        for t, label in marks:
            ax.axvline(when(t), color="crimson", linestyle="--", linewidth=1)
        ax.set_title(name, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7, loc="upper right", ncol=4)
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
    top = axes[0, 0]
    for t, label in marks:
        top.annotate(f"drift {label}", xy=(when(t), 1.0), xycoords=("data", "axes fraction"), rotation=90,
                     fontsize=7, color="crimson", va="top", ha="right")
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    axes[-1, 0].set_xlabel("time (UTC)")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main_report(settings, args) -> int:
    base = args.prometheus or f"http://127.0.0.1:{settings.prometheus_port}"
    end = time.time()
    start = end - args.minutes * 60
    step = max(5.0, args.minutes * 60 / 300)
    try:
        panels = [(name, query_range(base, expr, start, end, step)) for name, expr in PANELS]
        marks = drift_marks(query_range(base, DRIFT, start, end, step))
    except OSError as exc:
        print(f"streamrec report: cannot reach Prometheus at {base}: {exc}", file=sys.stderr)
        return 2
    out = render(panels, marks, Path(args.out),
                 f"streamrec: last {args.minutes:g} min, {len(marks)} drift detection(s)")
    print(f"wrote {out} ({sum(len(s) for _, s in panels)} series, {len(marks)} drift marks)")
    return 0
