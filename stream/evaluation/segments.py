"""``streamrec evaluate --segments``: global-only against segment-tuned, per segment, in one run.

One :class:`~stream.models.rerank.SegmentedRanker` runs the prequential protocol; on each
trial it gives, before learning, the global model's top-k (global-only), the shared
re-ranker's (learned from every segment), the segment layer's, and the served one (the
segment layer's, or the global one while the segment's guard says so): the rankings are
compared on exactly the same events and model states, so differences are paired.

Per segment the table has the trials, recall@k of global-only and of segment-tuned
(served), their difference and a noise band: two standard errors of the mean paired
difference ``hit(served) - hit(global)`` over the segment's trials. A segment is worse
beyond noise when its difference is below minus its band.

Segments come from profiles (MovieLens-100K's users file: ``age``, ``gender``,
``occupation``; the simulator's ``segment`` (its true segments), ``age_band``, ``country``),
known before the stream starts as the compacted users topic would be, or from behaviour
(``behaviour``: :class:`~stream.models.behaviour.BehaviourSegmenter` run along the stream).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TextIO

import numpy as np

from stream.models.behaviour import BehaviourSegmenter
from stream.models.rerank import SegmentedRanker
from stream.models.segments import ProfileSegmenter

__all__ = ["RANKINGS", "SegmentCounts", "SegmentReport", "profile_segments", "segmented_prequential",
           "format_segment_tables", "BehaviourFeed", "purity"]

#: The rankings compared on every trial, in table order.
RANKINGS = ("global", "shared", "segment", "served")


@dataclass
class SegmentCounts:
    """Hits of every ranking over one segment's trials, and the paired difference served - global."""

    trials: int = 0
    hits: Counter = field(default_factory=Counter)
    diff_sum: int = 0  # sum of hit(served) - hit(global)
    diff_sq: int = 0  # sum of its squares (the discordant trials)

    def add(self, hits: dict[str, bool]) -> None:
        self.trials += 1
        for name, hit in hits.items():
            self.hits[name] += int(hit)
        d = int(hits["served"]) - int(hits["global"])
        self.diff_sum += d
        self.diff_sq += d * d

    def recall(self, name: str) -> float:
        return self.hits[name] / self.trials if self.trials else 0.0

    @property
    def difference(self) -> float:
        return self.diff_sum / self.trials if self.trials else 0.0

    @property
    def noise(self) -> float:
        """Two standard errors of the mean paired difference (0 below two trials).

        Examples
        --------
        >>> c = SegmentCounts()
        >>> for s, g in [(1, 0), (0, 0), (1, 1), (0, 1), (1, 0)]:
        ...     c.add({"served": s, "global": g})
        >>> c.difference, round(c.noise, 3)
        (0.2, 0.748)
        """
        n = self.trials
        if n < 2:
            return 0.0
        mean = self.diff_sum / n
        var = (self.diff_sq - n * mean * mean) / (n - 1)
        return 2.0 * math.sqrt(max(var, 0.0) / n)


@dataclass
class SegmentReport:
    """The run's counts: overall and per segment, plus the guards' switches and timing."""

    k: int
    overall: SegmentCounts
    segments: dict[str, SegmentCounts]
    switches: list[dict[str, Any]]
    events: int
    seconds: float
    labels: dict[str, str] = field(default_factory=dict)  # readable names (behaviour segments)
    moves: int = 0  # users who moved between segments during the run
    purity: float | None = None  # behaviour segments against known true segments, if any

    def worse_beyond_noise(self) -> list[str]:
        return [s for s, c in self.segments.items() if c.difference < -c.noise]


def profile_segments(dataset: str, attributes: list[str], world=None, max_segments: int = 32,
                     min_users: int = 20) -> tuple[dict[str, str], ProfileSegmenter]:
    """user id -> segment id from the dataset's profiles (users file, or the simulator's profiles)."""
    if dataset == "movielens-100k":
        from stream.evaluation.datasets import movielens_100k_dir, read_users

        profiles = read_users(movielens_100k_dir() / "ml-100k.user")
    elif dataset == "simulator":
        profiles = {uid: dict(world.user_attrs[u]) for u, uid in enumerate(world.user_ids)}
    else:
        raise ValueError(f"profile_segments: unknown dataset {dataset!r}")
    known = sorted({name for p in profiles.values() for name in p})
    missing = [a for a in attributes if a not in known]
    if missing:
        raise ValueError(f"--segments: {dataset} profiles have no attribute {missing}; they have {known}")
    segmenter = ProfileSegmenter(attributes, min_users=min_users, max_segments=max_segments)
    segmenter.fit(profiles.values())
    return {uid: segmenter.assign(uid, p) for uid, p in profiles.items()}, segmenter


class BehaviourFeed:
    """Runs a :class:`BehaviourSegmenter` beside the ranker and keeps the ranker's segments current.

    The taste features are the user's MF vector (of the global model, if it has one)
    through a fixed seeded Gaussian projection to ``taste_dims`` values.
    """

    def __init__(self, ranker: SegmentedRanker, segmenter: BehaviourSegmenter) -> None:
        self.ranker = ranker
        self.segmenter = segmenter
        model = ranker.global_
        self._mf = model.parts.get("mf") if hasattr(model, "parts") else model
        self._projection = None
        if segmenter.taste_dims and self._mf is not None:
            rng = np.random.default_rng(segmenter.seed)
            k = self._mf.n_factors
            self._projection = rng.normal(0.0, 1.0 / math.sqrt(k), (k, segmenter.taste_dims))

    def _taste(self, user_id: str) -> np.ndarray | None:
        if not self.segmenter.taste_dims:
            return None
        if self._projection is None:
            return np.zeros(self.segmenter.taste_dims)
        u = self._mf._users.get(user_id)
        if u < 0:
            return np.zeros(self.segmenter.taste_dims)
        vector = self._mf.user_factors[u]
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector) @ self._projection

    def learn_one(self, user_id: str, weight: float, ts: float | None) -> None:
        segment = self.segmenter.learn_one(user_id, weight, ts, self._taste(user_id))
        if segment is not None and segment != self.ranker.segment_of(user_id):
            self.ranker.set_segment(user_id, segment)


def segmented_prequential(
    events: Iterable[Any],
    ranker: SegmentedRanker,
    k: int = 10,
    progress_every: int = 10_000,
    progress: TextIO | None = sys.stderr,
    feed: BehaviourFeed | None = None,
    on_trial: Callable[[str, dict[str, bool]], None] | None = None,
) -> SegmentReport:
    """The prequential protocol over one segmented ranker, counting every ranking per segment.

    ``feed`` keeps behaviour segments current; ``on_trial(segment, hits)`` sees every trial's
    hits ({ranking: bool}) in order (per-segment tuning pairs runs with it).
    """
    overall, per_segment = SegmentCounts(), {}
    seen: dict[str, set[str]] = {}
    start = time.perf_counter()
    n = 0
    for n, e in enumerate(events, 1):
        history = seen.get(e.user_id)
        if e.positive and history and e.item_id not in history:
            t = ranker.trial(e.user_id, e.item_id, k)
            hits = {"global": e.item_id in t.global_, "shared": e.item_id in t.shared,
                    "segment": e.item_id in t.segment_model, "served": e.item_id in t.served}
            overall.add(hits)
            per_segment.setdefault(t.segment, SegmentCounts()).add(hits)
            if on_trial is not None:
                on_trial(t.segment, hits)
        if feed is not None:
            feed.learn_one(e.user_id, e.weight, e.ts)
        ranker.learn_one(e.user_id, e.item_id, e.weight, e.ts)
        if history is None:
            seen[e.user_id] = {e.item_id}
        else:
            history.add(e.item_id)
        if progress is not None and progress_every and n % progress_every == 0:
            recalls = "  ".join(f"{name}={overall.recall(name):.3f}" for name in RANKINGS)
            print(f"[segments] {n} events, {time.perf_counter() - start:.0f}s, recall@{k}: {recalls}, "
                  f"guard switches {len(ranker.switches())}", file=progress, flush=True)
    return SegmentReport(k, overall, dict(sorted(per_segment.items())), ranker.switches(), n,
                         time.perf_counter() - start)


def purity(assign: Callable[[str], str | None], truth: dict[str, str]) -> float | None:
    """Share of assigned users whose segment's most common true segment is their own.

    Examples
    --------
    >>> purity({"a": "s1", "b": "s1", "c": "s2", "d": None}.get, {"a": "x", "b": "y", "c": "y", "d": "y"})
    0.6666666666666666
    """
    pairs = [(assign(u), t) for u, t in truth.items() if assign(u) is not None]
    if not pairs:
        return None
    counts = Counter(pairs)
    best = {}
    for (seg, t), c in counts.items():
        best[seg] = max(best.get(seg, 0), c)
    return sum(best.values()) / len(pairs)


def format_segment_tables(report: SegmentReport) -> str:
    """Markdown: the overall table of every ranking, then the per-segment table."""
    k, o = report.k, report.overall
    lines = [
        f"| ranking | trials | recall@{k} |",
        "|---|---:|---:|",
        f"| global-only (the global model) | {o.trials} | {o.recall('global'):.4f} |",
        f"| shared re-ranker only (all segments' events) | {o.trials} | {o.recall('shared'):.4f} |",
        f"| segment layers, unguarded | {o.trials} | {o.recall('segment'):.4f} |",
        f"| **segment-tuned (served, guarded)** | {o.trials} | **{o.recall('served'):.4f}** |",
        "",
        f"overall difference segment-tuned - global-only: {o.difference:+.4f} (noise band, 2 SE: "
        f"±{o.noise:.4f}); guard switches: {len(report.switches)}",
        "",
        f"| segment | trials | recall@{k} global-only | recall@{k} segment-tuned | difference | noise (2 SE) "
        f"| unguarded segment layer | guard switches |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    switches = Counter(s["segment"] for s in report.switches)
    for name, c in report.segments.items():
        label = f"{name} ({report.labels[name]})" if name in report.labels else name
        flag = " worse" if c.difference < -c.noise else ""
        lines.append(f"| {label} | {c.trials} | {c.recall('global'):.4f} | {c.recall('served'):.4f} "
                     f"| {c.difference:+.4f}{flag} | ±{c.noise:.4f} | {c.recall('segment'):.4f} | {switches[name]} |")
    worse = report.worse_beyond_noise()
    lines.append("")
    lines.append(f"segments worse beyond noise: {', '.join(worse) if worse else 'none'} "
                 f"(of {len(report.segments)})")
    if report.moves:
        lines.append(f"users who moved between segments: {report.moves}")
    if report.purity is not None:
        lines.append(f"behaviour segments against the true segments: purity {report.purity:.3f}")
    return "\n".join(lines)
