"""``streamrec evaluate --segments``: global-only against segment-tuned, per segment, in one run.

One :class:`~stream.engine.offline.EngineRanker` (the engine the worker runs, with its segment
re-rankers and guards) goes through the prequential protocol in fixed micro-batches. Each trial
(:class:`~stream.engine.engine.TrialOutcome`) says, before learning, whether the clicked item was
in the blend's top-k (global-only), the shared re-ranker layer's (learned from every segment),
the segment layer's (unguarded), and the served list (the segment layer's, or the blend's while
the segment's guard says so): the rankings are compared on exactly the same events and model
states, so differences are paired. A trial the re-ranker did not see (a cold user: segment
popularity) counts its served hit for all four.

Per segment the table has the trials, recall@k of global-only and of segment-tuned (served),
their difference and a noise band: two standard errors of the mean paired difference
``hit(served) - hit(global)`` over the segment's trials. A segment is worse beyond noise when its
difference is below minus its band.

Segments come from profiles (MovieLens-100K: ``age_band``, ``gender``, ``occupation``,
``zip_code``; the simulator: ``segment`` (its true segments), ``age_band``, ``country``), applied
before the stream starts as the compacted users topic would be; or from behaviour
(``behaviour``: the engine's online k-means, for users whose profile names no segment); or there
is one segment (``none``: the re-ranker without segments, to see what segments add).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, TextIO

from stream.engine.config import EngineConfig
from stream.engine.engine import TrialOutcome
from stream.engine.offline import EngineRanker
from stream.evaluation.prequential import fixed_batches
from stream.evaluation.streams import EventStream
from stream.models.config_io import rerank_params
from stream.models.rerank.params import RerankParams
from stream.models.segments.behaviour import BehaviourParams
from stream.models.segments.profile import ProfileSegmenter

__all__ = ["RANKINGS", "SegmentCounts", "SegmentReport", "SegmentSetup", "trial_hits", "segment_setup",
           "segmented_run", "evaluate_segments", "format_segment_tables", "purity"]

#: The rankings compared on every trial, in table order.
RANKINGS = ("global", "shared", "segment", "served")

# A ProfileSegmenter needs an attribute; one that no profile has puts every user in the default
# segment (profile_segment), which is what "behaviour" and "none" want.
_NO_ATTRIBUTES = ["_none"]


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
    switches: list[dict[str, Any]]  # the guards' switches, in order (segment, trial, to, mean_difference, window)
    events: int
    seconds: float
    labels: dict[str, str] = field(default_factory=dict)  # readable names (behaviour segments)
    moves: int = 0  # moves between behaviour segments during the run
    purity: float | None = None  # behaviour segments against known true segments, if any

    def worse_beyond_noise(self) -> list[str]:
        return [s for s, c in self.segments.items() if c.difference < -c.noise]


def trial_hits(trial: TrialOutcome) -> dict[str, bool]:
    """Whether each ranking of :data:`RANKINGS` held a trial's clicked item.

    Examples
    --------
    >>> from stream.contract import validate_event
    >>> click = validate_event("click", {"event_id": "e1", "user_id": "u", "item_id": "b", "ts": 1.0, "schema": "v1"})
    >>> trial_hits(TrialOutcome(0, click, "all", ["a", "b"], "m", glob_hit=False, seg_hit=True, shared_hit=False))
    {'global': False, 'shared': False, 'segment': True, 'served': True}
    >>> trial_hits(TrialOutcome(0, click, "all", ["c"], "cold", glob_hit=False, seg_hit=None))  # no re-ranker
    {'global': False, 'shared': False, 'segment': False, 'served': False}
    """
    served = trial.event.item_id in trial.served
    if trial.seg_hit is None:  # nothing but the served list was ranked: every ranking is it
        return dict.fromkeys(RANKINGS, served)
    shared = served if trial.shared_hit is None else trial.shared_hit
    return {"global": trial.glob_hit, "shared": shared, "segment": trial.seg_hit, "served": served}


@dataclass(frozen=True)
class SegmentSetup:
    """What ``--segments SPEC`` runs: the engine's configuration and how users get segments."""

    config: EngineConfig
    how: str  # for the report's first line
    segmenter: ProfileSegmenter | None = None  # fitted on the stream's profiles (profile segments)


def _rerank(config: dict[str, Any] | None, overrides: dict[str, Any] | None) -> RerankParams:
    base = rerank_params(config)
    if not overrides:
        return base
    names = [f.name for f in fields(RerankParams)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"--rerank: unknown re-ranker parameters {unknown}; RerankParams has {names}")
    return replace(base, **overrides)


def segment_setup(stream: EventStream, spec: str, config: dict[str, Any] | None = None,
                  rerank: dict[str, Any] | None = None, k: int = 10, max_segments: int = 32,
                  min_users: int = 20) -> SegmentSetup:
    """The engine configuration for ``--segments SPEC`` over a stream (see the module docstring).

    The blend and the rest are what a worker would serve with ``config`` (a model configuration
    file's contents, or None: the defaults); the re-ranker is ``config``'s with ``rerank``'s
    overrides.

    Raises
    ------
    ValueError
        When SPEC names an attribute the stream's profiles do not have (the message lists those
        they have), or ``rerank`` a parameter :class:`RerankParams` does not have.

    Examples
    --------
    >>> profiles = [{"user_id": f"u{n}", "attributes": {"plan": "pro" if n % 2 else "free"}} for n in range(4)]
    >>> stream = EventStream("tiny", profiles=profiles)
    >>> setup = segment_setup(stream, "plan", min_users=2)
    >>> setup.config.segmenter["combinations"], setup.config.behaviour is None
    (['plan:free', 'plan:pro'], True)
    >>> segment_setup(stream, "behaviour").config.behaviour.n_clusters
    4
    >>> segment_setup(stream, "plan,zodiac")
    Traceback (most recent call last):
    ...
    ValueError: --segments 'plan,zodiac': the profiles of tiny have no attribute ['zodiac']; they have ['plan'] (or give 'behaviour' or 'none')
    """
    from stream.evaluation.run import served_config

    served = served_config(config).with_changes(rerank=_rerank(config, rerank), top_k=k, max_segments=max_segments)
    if spec == "none":
        return SegmentSetup(served.with_changes(segmenter={"attributes": _NO_ATTRIBUTES}, behaviour=None),
                            f"none (every user in {served.default_segment!r})")
    if spec == "behaviour":
        base = served.behaviour if served.behaviour is not None else BehaviourParams()
        behaviour = replace(base, n_clusters=min(base.n_clusters, max_segments))
        return SegmentSetup(served.with_changes(segmenter={"attributes": _NO_ATTRIBUTES}, behaviour=behaviour),
                            f"behaviour ({behaviour.n_clusters} online k-means clusters over activity, dwell, "
                            f"skip rate and {behaviour.taste_dims} taste values; assigned along the stream)")
    attributes = [a.strip() for a in spec.split(",") if a.strip()]
    known = sorted({name for p in stream.profiles for name in (p.get("attributes") or {})})
    missing = [a for a in attributes if a not in known]
    if not attributes or missing:
        what = f"have no attribute {missing}" if missing else "need attributes named"
        raise ValueError(f"--segments {spec!r}: the profiles of {stream.name} {what}; they have {known} "
                         f"(or give 'behaviour' or 'none')")
    segmenter = ProfileSegmenter(attributes, min_users=min_users, max_segments=max_segments)
    segmenter.fit([p.get("attributes") or {} for p in stream.profiles])
    n = len(segmenter.combinations) + 1  # and ``other``
    return SegmentSetup(served.with_changes(segmenter=segmenter.get_params(), behaviour=None),
                        f"profile attributes {','.join(attributes)} (at most {n} segments, of at least "
                        f"{min_users} users)", segmenter)


def segmented_run(
    stream: EventStream,
    config: EngineConfig,
    batch_size: int = 100,
    progress_every: int = 10_000,
    progress: TextIO | None = None,
    on_trial: Callable[[str, dict[str, bool]], None] | None = None,
) -> tuple[SegmentReport, EngineRanker]:
    """The protocol over one :class:`EngineRanker` in fixed batches, every ranking counted per segment.

    ``on_trial(segment, hits)`` sees every trial's hits ({ranking: bool}) in order (per-segment
    tuning pairs runs with it). Returns the report (without purity) and the ranker, as it ends.
    """
    ranker = EngineRanker(config)
    ranker.prepare(stream)
    events = stream.events()
    k = config.top_k
    overall, per_segment = SegmentCounts(), {}
    switches: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    moves = done = 0
    next_report = progress_every
    start = time.perf_counter()
    for batch in fixed_batches(len(events), batch_size):
        ranker.step([events[i] for i in batch])
        result = ranker.last
        for trial in result.trials:
            hits = trial_hits(trial)
            overall.add(hits)
            per_segment.setdefault(trial.segment, SegmentCounts()).add(hits)
            if on_trial is not None:
                on_trial(trial.segment, hits)
        switches += result.learned.switches
        moves += len(result.learned.moved)
        labels.update(result.learned.labels)  # a batch without behaviour steps reports none
        done += len(batch)
        if progress is not None and progress_every and done >= next_report:
            next_report += progress_every
            recalls = "  ".join(f"{name}={overall.recall(name):.3f}" for name in RANKINGS)
            print(f"[segments] {done:,} events, {time.perf_counter() - start:.0f}s, recall@{k}: {recalls}, "
                  f"guard switches {len(switches)}", file=progress, flush=True)
    report = SegmentReport(k, overall, dict(sorted(per_segment.items())), switches, len(events),
                           time.perf_counter() - start, labels, moves)
    return report, ranker


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
    best: dict[str, int] = {}
    for (seg, _), c in Counter(pairs).items():
        best[seg] = max(best.get(seg, 0), c)
    return sum(best.values()) / len(pairs)


def _behaviour_segment(ranker: EngineRanker, user_id: str) -> str | None:
    rec = ranker.state.user_records.get(user_id)
    return rec.behaviour.segment if rec is not None and rec.behaviour is not None else None


def evaluate_segments(
    stream: EventStream,
    spec: str,
    k: int = 10,
    progress_every: int = 10_000,
    config: dict[str, Any] | None = None,
    rerank: dict[str, Any] | None = None,
    batch_size: int = 100,
    max_segments: int = 32,
    min_users: int = 20,
    out: TextIO | None = None,
    progress: TextIO | None | str = "stderr",
) -> SegmentReport:
    """Global-only against segment-tuned in one prequential run (see the module docstring); prints
    the overall and the per-segment tables to ``out`` (default stdout; progress lines to
    ``progress``, default stderr, None for none) and returns the report.

    Examples
    --------
    >>> import io
    >>> clicks = [("click", {"event_id": f"e{n}", "user_id": f"u{n % 4}", "item_id": f"i{(n * 7) % 9}",
    ...                      "ts": float(n), "schema": "v1"}) for n in range(60)]
    >>> profiles = [{"user_id": f"u{n}", "attributes": {"plan": "pro" if n % 2 else "free"}} for n in range(4)]
    >>> report = evaluate_segments(EventStream("tiny", profiles, [], clicks), "plan", min_users=1, batch_size=10,
    ...                            out=io.StringIO(), progress=None)
    >>> sorted(report.segments), report.overall.trials == sum(c.trials for c in report.segments.values())
    (['plan:free', 'plan:pro'], True)
    """
    out = sys.stdout if out is None else out
    progress = sys.stderr if progress == "stderr" else progress
    setup = segment_setup(stream, spec, config, rerank, k, max_segments, min_users)
    rp = setup.config.rerank
    tuned = f", tuned re-ranker settings for {len(rp.segment_params)} segments" if rp.segment_params else ""
    print(f"streamrec evaluate --segments: {stream.name}, {len(stream.events()):,} events ({stream.positives:,} "
          f"positive), k={k}, micro-batches of {batch_size}; segments from {setup.how}; "
          f"the blend {'of ' + config['model'] if config else '(defaults)'}{tuned}", file=out, flush=True)
    report, ranker = segmented_run(stream, setup.config, batch_size, progress_every, progress)
    if setup.config.behaviour is not None and stream.world is not None:
        world = stream.world
        truth = {uid: world.user_segment(u) for u, uid in enumerate(world.user_ids)}
        report.purity = purity(lambda uid: _behaviour_segment(ranker, uid), truth)
    ranker.close()
    print(format_segment_tables(report), file=out)
    print(f"wall time {report.seconds:.0f} s", file=out, flush=True)
    return report


def format_segment_tables(report: SegmentReport) -> str:
    """Markdown: the overall table of every ranking, then the per-segment table."""
    k, o = report.k, report.overall
    lines = [
        f"| ranking | trials | recall@{k} |",
        "|---|---:|---:|",
        f"| global-only (the blend) | {o.trials} | {o.recall('global'):.4f} |",
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
        lines.append(f"moves between behaviour segments: {report.moves}")
    if report.purity is not None:
        lines.append(f"behaviour segments against the true segments: purity {report.purity:.3f}")
    return "\n".join(lines)
