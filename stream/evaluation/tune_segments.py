"""``streamrec tune --space rerank``: the re-ranker's hyperparameters, chosen per segment.

Each trial runs the segmented prequential protocol on the stream's prefix with one
sampled setting of the segment layers (learning rate, L2, candidates, guard margin), given
to every segment as its ``segment_params`` (the shared layer keeps the defaults, as it will
when the chosen settings are deployed), and keeps every segment's served hits trial by
trial. Trial 0 is the defaults.
A segment's trials are the same events in every run (profile segments are fixed, the
global model is the same), so settings compare paired: a segment takes the setting with
the largest mean gain over the defaults, and only when that gain exceeds ``min_z`` (2)
standard errors of the paired difference; otherwise it keeps the defaults. The best of
several noisy settings is optimistic, the more so the smaller the segment: on MovieLens-100K
a 1-SE rule picked settings for 4 of 17 segments that, over the whole stream, did no better
than the defaults (docs/EVALUATION.md).

Segments share the global model and the shared layer, so a segment's figure depends on
the others' settings through the shared layer's examples; ``n_candidates`` most of all, since
the features are normalised over the candidate list the shared layer learns from. Each trial
uses one setting everywhere, and the chosen mix was not run as such on the prefix: evaluate it.

The result is a ``SegmentedRanker`` configuration (:mod:`stream.models.config_io`) with
the defaults and ``segment_params``; ``source`` records the segments' figures and the
segmenter that named them.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

import numpy as np

from stream.evaluation.segments import profile_segments, segmented_prequential
from stream.evaluation.tune import _random_suggest
from stream.models.config_io import save_model_config
from stream.models.rerank import SEGMENT_KEYS, SegmentedRanker

__all__ = ["RERANK_SPACE", "tune_segments", "paired_gain"]

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
    d = hits.astype(np.float64) - baseline
    if len(d) < 2:
        return float(d.mean()) if len(d) else 0.0, math.inf
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def tune_segments(
    events: list,
    dataset: str,
    segments: str,
    world=None,
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
) -> tuple[dict[str, Any], str]:
    """Search per segment; returns (SegmentedRanker params, a Markdown report) and writes ``output``."""
    from stream.evaluation.run import segmented_ranker

    if segments == "behaviour":
        raise ValueError("tune --space rerank: per-segment tuning needs profile segments (fixed for the run), "
                         "not behaviour")
    users, segmenter = profile_segments(dataset, segments.split(","), world, max_segments, min_users)
    base = segmented_ranker(config).get_params()
    base["segment_params"] = None
    segment_ids = sorted(set(users.values()))
    suggest = _random_suggest(np.random.default_rng(seed))
    settings: list[dict[str, Any]] = [{}]
    settings += [{name: suggest(name, kind, args) for name, kind, args in RERANK_SPACE} for _ in range(n_trials - 1)]
    runs: list[dict[str, np.ndarray]] = []  # per trial: segment -> served hits, trial by trial
    started = time.perf_counter()
    for n, overrides in enumerate(settings):
        per_segment = {s: overrides for s in segment_ids} if overrides else None
        ranker = SegmentedRanker(**{**base, "segment_params": per_segment})
        for user_id, segment in users.items():
            ranker.set_segment(user_id, segment)
        hits: dict[str, list[int]] = {}
        report = segmented_prequential(
            events, ranker, k=k, progress=None,
            on_trial=lambda segment, h: hits.setdefault(segment, []).append(int(h["served"])))
        runs.append({s: np.array(h, dtype=np.int8) for s, h in hits.items()})
        if progress is not None:
            print(f"[tune rerank] trial {n + 1}/{len(settings)} {overrides or 'defaults'}: served recall@{k}="
                  f"{report.overall.recall('served'):.4f} (global {report.overall.recall('global'):.4f}), "
                  f"{time.perf_counter() - started:.0f}s", file=progress, flush=True)
    chosen: dict[str, dict[str, Any]] = {}
    figures: dict[str, dict[str, Any]] = {}
    for segment, default_hits in sorted(runs[0].items()):
        gains = [paired_gain(runs[n][segment], default_hits) for n in range(1, len(runs))]
        top = max(range(len(gains)), key=lambda n: gains[n][0]) if gains else None
        best = top + 1 if top is not None and gains[top][0] > min_z * gains[top][1] else 0
        if best:
            chosen[segment] = settings[best]
        figures[segment] = {"trials": len(default_hits), "default": float(default_hits.mean()),
                            "tuned": float(runs[best][segment].mean()), "trial": best,
                            "best_gain": gains[top][0] if gains else 0.0,
                            "best_gain_se": gains[top][1] if gains else 0.0}
    params = {**base, "segment_params": chosen or None}
    if output is not None:
        save_model_config(output, "SegmentedRanker", params, {
            **(source or {}), "metric": f"recall@{k} (served)", "trials": len(settings), "sampler": "random",
            "seed": seed, "prefix_events": len(events), "segments": segments, "segmenter": segmenter.get_params(),
            "per_segment": figures,
        })
    lines = [f"| segment | trials | recall@{k} defaults | best other trial: gain ± SE | recall@{k} chosen "
             f"| setting chosen |", "|---|---:|---:|---:|---:|---|"]
    for segment, f in figures.items():
        setting = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                            for key, value in chosen.get(segment, {}).items()) or "defaults"
        lines.append(f"| {segment} | {f['trials']} | {f['default']:.4f} | {f['best_gain']:+.4f} ± "
                     f"{f['best_gain_se']:.4f} | {f['tuned']:.4f} | {setting} |")
    return params, "\n".join(lines)
