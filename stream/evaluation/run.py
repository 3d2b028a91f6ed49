"""``streamrec evaluate``: streamrec's models and the baselines through one prequential run."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import numpy as np

from stream.evaluation.baselines import baseline_models
from stream.evaluation.prequential import MicroBatched, format_table, prequential
from stream.models.base import IdIndex, SeenItems, top_k
from stream.models.hybrid import HybridRanker
from stream.models.mf import OnlineMF

__all__ = ["DEFAULT_MF", "DEFAULT_HYBRID", "Oracle", "streamrec_models", "load_events", "evaluate"]

# Defaults chosen on MovieLens-100K (docs/EVALUATION.md); `streamrec tune` writes alternatives.
DEFAULT_MF: dict[str, Any] = {
    "n_factors": 64, "learning_rate": 0.1, "l2": 1e-4, "n_negatives": 16, "negative_weight": 0.05,
    "sampling_alpha": 0.3, "init_scale": 0.1, "passes": 1, "track_seen": True, "seed": 0,
}
DEFAULT_HYBRID: dict[str, Any] = {
    "mf_weight": 0.3, "cooccurrence_weight": 1.0, "popularity_weight": 0.1,
    "mf": DEFAULT_MF,
    "cooccurrence": {"decay": 0.7, "history": 30, "window": 30},
    "popularity": {"half_life": 7 * 86400.0},
    "normalise": "max",
}


class Oracle:
    """Ranks by the simulator's true affinity (an upper reference, not a model).

    Examples
    --------
    >>> class World:
    ...     user_ids, item_ids = ["u"], ["a", "b", "c"]
    ...     def affinity(self, u):
    ...         return np.array([0.1, 0.9, 0.5])
    >>> oracle = Oracle(World())
    >>> oracle.learn_one("u", "b")
    >>> oracle.rank("u", k=2)
    ['c', 'a']
    """

    def __init__(self, world) -> None:
        self.world = world
        self._user_pos = {u: n for n, u in enumerate(world.user_ids)}
        self._items = IdIndex(world.item_ids)
        self._seen = SeenItems()

    def learn_one(self, user_id: str, item_id: str, weight: float = 1.0, ts: float | None = None) -> None:
        u, i = self._user_pos[user_id], self._items.get(item_id)
        self._seen.add_many(np.array([u]), np.array([i]))

    def rank(self, user_id: str, k: int = 10) -> list[str]:
        u = self._user_pos[user_id]
        scores = np.asarray(self.world.affinity(u), dtype=np.float64)
        return [self._items.ids[j] for j in top_k(scores, k, self._seen.get(u)).tolist()]


def streamrec_models(config: dict[str, Any] | None = None, batch_size: int = 1) -> dict[str, Any]:
    """streamrec's entries of the table: MF alone, the hybrid, and a tuned configuration if given.

    With ``batch_size > 1`` they learn in micro-batches (see :class:`MicroBatched`).
    """
    from stream.models.config_io import build_model

    suffix = f" (batch {batch_size})" if batch_size > 1 else ""
    models: dict[str, Any] = {
        "streamrec-mf" + suffix: OnlineMF(**DEFAULT_MF),
        "streamrec-hybrid" + suffix: HybridRanker(**DEFAULT_HYBRID),
    }
    if config is not None:
        models[f"streamrec-tuned {config['model']}" + suffix] = build_model(config)
    if batch_size > 1:
        models = {name: MicroBatched(model, batch_size) for name, model in models.items()}
    return models


def load_events(dataset: str, limit: int | None = None, sim_events: int = 100_000, seed: int = 7):
    """(events, world or None) for a dataset name of the CLI."""
    from stream.evaluation import datasets

    if dataset == "movielens-100k":
        return datasets.movielens_events(limit=limit), None
    if dataset == "simulator":
        events, world = datasets.simulator_events(n_events=sim_events, seed=seed)
        return (events[:limit] if limit else events), world
    raise ValueError(f"load_events: unknown dataset {dataset!r} (movielens-100k or simulator)")


def evaluate(
    dataset: str,
    limit: int | None = None,
    k: int = 10,
    progress_every: int = 10_000,
    config: dict[str, Any] | None = None,
    sim_events: int = 100_000,
    seed: int = 7,
    baselines: bool = True,
    batch_size: int = 1,
    out: TextIO | None = None,
    progress: TextIO | None | str = "stderr",
) -> dict:
    """Run the protocol and print the table (to ``out``, default stdout; progress lines to
    ``progress``, default stderr, None for none); returns {model name: metrics}."""
    out = sys.stdout if out is None else out
    progress = sys.stderr if progress == "stderr" else progress
    started = time.perf_counter()
    events, world = load_events(dataset, limit=limit, sim_events=sim_events, seed=seed)
    n_pos = sum(e.positive for e in events)
    print(f"streamrec evaluate: {dataset}, {len(events):,} events ({n_pos:,} positives), k={k}", file=out, flush=True)
    models = dict(baseline_models()) if baselines else {}
    models.update(streamrec_models(config, batch_size=batch_size))
    if world is not None:
        models["oracle (true affinity)"] = Oracle(world)
    metrics, catalogue = prequential(events, models, k=k, progress_every=progress_every, progress=progress)
    elapsed = time.perf_counter() - started
    print(format_table(metrics, catalogue, k=k), file=out)
    how = f"micro-batches of {batch_size} for streamrec's models" if batch_size > 1 else "per-event learn_one"
    print(f"catalogue: {catalogue} items; learn events/s: {how} inside the protocol "
          f"(`streamrec bench model` measures kernel throughput); wall time {elapsed:.0f} s", file=out, flush=True)
    ours = {n: m.recall for n, m in metrics.items() if n.startswith("streamrec")}
    theirs = {n: m.recall for n, m in metrics.items() if not n.startswith(("streamrec", "oracle"))}
    if ours and theirs:
        best, best_base = max(ours, key=ours.get), max(theirs, key=theirs.get)
        verdict = "above" if ours[best] > theirs[best_base] else "NOT above"
        print(f"best streamrec: {best} recall@{k}={ours[best]:.4f}, {verdict} the best baseline "
              f"{best_base} ({theirs[best_base]:.4f})", file=out, flush=True)
    return metrics


def segmented_ranker(config: dict[str, Any] | None, rerank: dict[str, Any] | None = None):
    """The segment-tuned model of ``evaluate --segments``: a SegmentedRanker configuration as
    is, or a SegmentedRanker around the given global model (the default hybrid without one)."""
    from stream.models.rerank import SegmentedRanker

    if config is not None and config["model"] == "SegmentedRanker":
        return SegmentedRanker(**{**config["params"], **(rerank or {})})
    if config is None:
        return SegmentedRanker("HybridRanker", DEFAULT_HYBRID, **(rerank or {}))
    if config["model"] not in ("HybridRanker", "OnlineMF"):
        raise ValueError(f"evaluate --segments: the global model must be a HybridRanker or OnlineMF "
                         f"configuration, got {config['model']}")
    return SegmentedRanker(config["model"], config["params"], **(rerank or {}))


def evaluate_segments(
    dataset: str,
    segments: str,
    limit: int | None = None,
    k: int = 10,
    progress_every: int = 10_000,
    config: dict[str, Any] | None = None,
    rerank: dict[str, Any] | None = None,
    sim_events: int = 100_000,
    seed: int = 7,
    max_segments: int = 32,
    min_users: int = 20,
    out: TextIO | None = None,
    progress: TextIO | None | str = "stderr",
):
    """Global-only against segment-tuned in one prequential run; prints the overall and the
    per-segment tables (:mod:`stream.evaluation.segments`) and returns the report.

    ``segments`` is a comma-separated list of profile attributes, ``behaviour``, or ``none``
    (every user in one segment: the re-ranker without segments, for comparison).
    """
    from stream.evaluation.segments import (BehaviourFeed, format_segment_tables, profile_segments, purity,
                                            segmented_prequential)
    from stream.models.behaviour import BehaviourSegmenter

    out = sys.stdout if out is None else out
    progress = sys.stderr if progress == "stderr" else progress
    started = time.perf_counter()
    events, world = load_events(dataset, limit=limit, sim_events=sim_events, seed=seed)
    ranker = segmented_ranker(config, rerank)
    feed = None
    if segments == "none":  # one segment: the re-ranker alone, what segments add is the difference
        how = f"none (every user in {ranker.default_segment!r})"
    elif segments == "behaviour":
        feed = BehaviourFeed(ranker, BehaviourSegmenter(n_clusters=min(4, max_segments), taste_dims=2, seed=0))
        how = "behaviour (River k-means over activity, dwell, skip rate, taste; assigned along the stream)"
    else:
        users, segmenter = profile_segments(dataset, segments.split(","), world, max_segments, min_users)
        for user_id, segment in users.items():
            ranker.set_segment(user_id, segment)
        how = f"profile attributes {segments} ({len(set(users.values()))} segments, at most {max_segments})"
    n_pos = sum(e.positive for e in events)
    tuned = f", tuned settings for {len(ranker.segment_params)} segments" if ranker.segment_params else ""
    print(f"streamrec evaluate --segments: {dataset}, {len(events):,} events ({n_pos:,} positives), k={k}; "
          f"segments from {how}; global model {ranker.global_model}{tuned}", file=out, flush=True)
    report = segmented_prequential(events, ranker, k=k, progress_every=progress_every, progress=progress, feed=feed)
    if feed is not None:
        report.labels = feed.segmenter.labels()
        report.moves = feed.segmenter.assignments.n_moves
        if world is not None:
            truth = {uid: world.user_segment(u) for u, uid in enumerate(world.user_ids)}
            report.purity = purity(feed.segmenter.segment_of, truth)
    print(format_segment_tables(report), file=out)
    print(f"wall time {time.perf_counter() - started:.0f} s", file=out, flush=True)
    return report
