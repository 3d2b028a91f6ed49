"""``streamrec tune --space rerank``: the re-ranker's hyperparameters, chosen per segment.

Each trial runs the engine (:func:`stream.evaluation.segments.segmented_run`, profile segments)
on the stream's prefix with one sampled setting of the segment layers (learning rate, L2,
candidates, guard margin), given to every segment as its ``segment_params`` (the shared layer
keeps the defaults, as it will when the chosen settings are deployed), and keeps every segment's
served hits trial by trial. Trial 0 is the defaults.

A segment's trials are the same events in every run (profile segments are fixed, the blend
does not depend on the re-ranker), so settings compare paired: a segment takes the setting with
the largest mean gain over the defaults, and only when that gain exceeds ``min_z`` (2) standard
errors of the paired difference; otherwise it keeps the defaults. The best of several noisy
settings is optimistic, the more so the smaller the segment: on MovieLens-100K a 1-SE rule
picked settings for 4 of 17 segments that, over the whole stream, did no better than the
defaults (docs/EVALUATION.md).

Segments share the blend and the shared layer, so a segment's figure depends on the others'
settings through the shared layer's examples; ``n_candidates`` most of all, since the features
are normalised over the candidate list the shared layer learns from. Each trial uses one
setting everywhere, and the chosen mix was not run as such on the prefix: evaluate it.

The result is a ``SegmentedRanker`` configuration (:mod:`stream.models.config_io`): the blend
that was run (the given configuration's, as a worker serves it), the re-ranker's defaults and
``segment_params``; ``source`` records the segments' figures and the segmenter that named them.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from typing import Any, TextIO

import numpy as np

from stream.evaluation.segments import segment_setup, segmented_run
from stream.evaluation.streams import EventStream
from stream.evaluation.tune import _random_suggest
from stream.models.config_io import save_model_config
from stream.models.rerank.params import SEGMENT_KEYS
from stream.models.segments.profile import profile_segment

__all__ = ["RERANK_SPACE", "tune_segments", "paired_gain", "choose"]

# (parameter, kind, arguments) as in stream.evaluation.tune; every name is one of SEGMENT_KEYS
RERANK_SPACE = [
    ("learning_rate", "logfloat", (0.005, 0.1)),
    ("l2", "choice", ([0.0, 1e-4, 1e-3],)),
    ("n_candidates", "choice", ([50, 100, 200],)),
    ("guard_margin", "float", (0.0, 0.03)),
]
assert all(name in SEGMENT_KEYS for name, _, _ in RERANK_SPACE)


def paired_gain(hits: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """Mean of ``hits - baseline`` (0/1 each, same trials) and its standard error.

    Examples
    --------
    >>> gain, se = paired_gain(np.array([1, 1, 0, 1]), np.array([0, 1, 0, 0]))
    >>> gain, round(se, 4)
    (0.5, 0.2887)
    """
    if len(hits) != len(baseline):
        raise ValueError(f"paired_gain: the runs must score the same trials, got {len(hits)} and {len(baseline)}")
    d = hits.astype(np.float64) - baseline
    if len(d) < 2:
        return float(d.mean()) if len(d) else 0.0, math.inf
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def choose(runs: list[dict[str, np.ndarray]], min_z: float = 2.0) -> dict[str, dict[str, Any]]:
    """Per segment, the trial chosen (0: the defaults) and its figures, from each trial's served
    hits per segment (``runs[0]``: the defaults').

    Examples
    --------
    >>> defaults = {"a": np.zeros(50, np.int8), "b": np.zeros(50, np.int8)}
    >>> better_a = {"a": np.ones(50, np.int8), "b": np.zeros(50, np.int8)}  # a gains on every trial
    >>> {s: f["trial"] for s, f in choose([defaults, better_a]).items()}
    {'a': 1, 'b': 0}
    """
    figures: dict[str, dict[str, Any]] = {}
    for segment, default_hits in sorted(runs[0].items()):
        gains = [paired_gain(run[segment], default_hits) for run in runs[1:]]
        top = max(range(len(gains)), key=lambda n: gains[n][0]) if gains else None
        best = top + 1 if top is not None and gains[top][0] > min_z * gains[top][1] else 0
        figures[segment] = {"trials": len(default_hits), "default": float(default_hits.mean()),
                            "tuned": float(runs[best][segment].mean()), "trial": best,
                            "best_gain": gains[top][0] if gains else 0.0,
                            "best_gain_se": gains[top][1] if gains else 0.0}
    return figures


def tune_segments(
    stream: EventStream,
    segments: str,
    config: dict[str, Any] | None = None,
    n_trials: int = 8,
    k: int = 10,
    seed: int = 0,
    min_z: float = 2.0,
    output: str | None = None,
    source: dict[str, Any] | None = None,
    max_segments: int = 32,
    min_users: int = 20,
    progress: TextIO | None = sys.stderr,
    batch_size: int = 100,
) -> tuple[dict[str, Any], str]:
    """Search per segment (see the module docstring); returns (the ``SegmentedRanker`` params, a
    Markdown report) and writes ``output`` if given.

    ``segments`` names profile attributes of the stream's profiles, as ``evaluate --segments``;
    ``config`` is a model configuration (its blend and re-ranker defaults), None: the defaults.

    Examples
    --------
    >>> clicks = [("click", {"event_id": f"e{n}", "user_id": f"u{n % 4}", "item_id": f"i{(n * 7) % 9}",
    ...                      "ts": float(n), "schema": "v1"}) for n in range(60)]
    >>> profiles = [{"user_id": f"u{n}", "attributes": {"plan": "pro" if n % 2 else "free"}} for n in range(4)]
    >>> params, report = tune_segments(EventStream("tiny", profiles, [], clicks), "plan", n_trials=2, min_users=1,
    ...                                progress=None, batch_size=10)
    >>> params["global_model"], params["segment_params"], report.splitlines()[2].split(" | ")[0]
    ('HybridRanker', {}, '| plan:free')
    """
    if segments in ("behaviour", "none"):
        raise ValueError(f"tune --space rerank: per-segment tuning needs profile segments (fixed for the run), "
                         f"not {segments!r}")
    if n_trials < 1:
        raise ValueError(f"tune --space rerank: n_trials must be >= 1 (trial 0 is the defaults), got {n_trials}")
    setup = segment_setup(stream, segments, config, k=k, max_segments=max_segments, min_users=min_users)
    base = replace(setup.config.rerank, segment_params={})
    # every segment a user can be in: the profiles' (as the engine assigns them) and the default
    default = setup.config.default_segment
    segment_ids = sorted({profile_segment(p.get("attributes") or {}, setup.segmenter, default)
                          for p in stream.profiles} | {default})
    suggest = _random_suggest(np.random.default_rng(seed))
    settings: list[dict[str, Any]] = [{}]
    settings += [{name: suggest(name, kind, args) for name, kind, args in RERANK_SPACE} for _ in range(n_trials - 1)]
    runs: list[dict[str, np.ndarray]] = []  # per trial: segment -> served hits, trial by trial
    started = time.perf_counter()
    for n, overrides in enumerate(settings):
        rerank = replace(base, segment_params={s: dict(overrides) for s in segment_ids} if overrides else {})
        hits: dict[str, list[int]] = {}
        report, ranker = segmented_run(
            stream, setup.config.with_changes(rerank=rerank), batch_size, progress=None,
            on_trial=lambda segment, h: hits.setdefault(segment, []).append(int(h["served"])))
        ranker.close()
        runs.append({s: np.array(h, dtype=np.int8) for s, h in hits.items()})
        if set(runs[-1]) != set(runs[0]):
            raise RuntimeError(f"tune --space rerank: trial {n} saw trials in segments {sorted(runs[-1])}, the "
                               f"defaults in {sorted(runs[0])}: the runs are not paired")
        if progress is not None:
            print(f"[tune rerank] trial {n + 1}/{len(settings)} {overrides or 'defaults'}: served recall@{k}="
                  f"{report.overall.recall('served'):.4f} (global {report.overall.recall('global'):.4f}), "
                  f"{time.perf_counter() - started:.0f}s", file=progress, flush=True)
    figures = choose(runs, min_z)
    chosen = {s: settings[f["trial"]] for s, f in figures.items() if f["trial"]}
    params = {"global_model": "HybridRanker", "global_params": setup.config.hybrid.as_dict(),
              **replace(base, segment_params=chosen).as_dict()}
    if output is not None:
        save_model_config(output, "SegmentedRanker", params, {
            **(source or {}), "metric": f"recall@{k} (served)", "trials": len(settings), "sampler": "random",
            "seed": seed, "min_z": min_z, "prefix_events": len(stream.events()), "batch_size": batch_size,
            "segments": segments, "segmenter": setup.segmenter.get_params(), "per_segment": figures,
        })
    lines = [f"| segment | trials | recall@{k} defaults | best other trial: gain ± SE | recall@{k} chosen "
             f"| setting chosen |", "|---|---:|---:|---:|---:|---|"]
    for segment, f in figures.items():
        setting = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                            for key, value in chosen.get(segment, {}).items()) or "defaults"
        lines.append(f"| {segment} | {f['trials']} | {f['default']:.4f} | {f['best_gain']:+.4f} ± "
                     f"{f['best_gain_se']:.4f} | {f['tuned']:.4f} | {setting} |")
    return params, "\n".join(lines)
