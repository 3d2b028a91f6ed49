"""``streamrec evaluate``: the engine's configurations and the baselines through one prequential run.

Every streamrec row is the engine (:class:`~stream.engine.offline.EngineRanker`) with a
configuration; popularity and item-kNN are the engine's own parts alone; River's FunkMF is
the external reference. All see the same contract events in the same micro-batches.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import numpy as np

from stream.engine.config import EngineConfig
from stream.engine.offline import EngineRanker
from stream.evaluation.baselines import baseline_models
from stream.evaluation.prequential import PerEvent, as_json, fixed_batches, format_table, prequential
from stream.evaluation.streams import EventStream, load_stream
from stream.models.base import IdIndex, SeenItems, top_k
from stream.models.config_io import hybrid_params
from stream.models.hybrid import HybridParams

__all__ = ["Oracle", "streamrec_rankers", "served_config", "evaluate", "DEFAULT_BATCH", "SERVED"]

#: The default micro-batch of ``evaluate`` (docs/EVALUATION.md: how much it matters).
DEFAULT_BATCH = 100


class Oracle:
    """Ranks by the simulator's true affinity (an upper reference, not a model).

    Examples
    --------
    >>> class World:
    ...     user_ids, item_ids = ["u"], ["a", "b", "c"]
    ...     def affinity(self, u):
    ...         return np.array([0.1, 0.9, 0.5])
    >>> oracle = Oracle(World())
    >>> oracle.learn_one("u", "b", 1.0, 0.0)
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


def served_config(model_config: dict[str, Any] | None = None, settings=None) -> EngineConfig:
    """What a worker with these settings (default: the defaults) and this model file serves."""
    from stream.config import Settings

    return EngineConfig.from_settings(settings or Settings(), model_config)


#: The row whose MF item space every row's ILD is measured in.
SERVED = "streamrec (as the worker serves)"


def streamrec_rankers(model_config: dict[str, Any] | None = None, diversity: float = 0.0) -> dict[str, EngineRanker]:
    """streamrec's rows: MF alone, the blend alone (defaults), the blend with a tuned file, and
    what the worker serves (the blend, segment re-rankers and guards, behaviour segments,
    exploration); every row with the MMR weight ``diversity`` (λ) and the worker's share of
    trials scored (STREAMREC_TRIAL_SHARE), so that every row is scored on the same trials."""
    served = served_config(model_config)
    alone = {"rerank": None, "behaviour": None, "explore_share": 0.0, "diversity": diversity,
             "trial_share": served.trial_share}
    rows = {
        "streamrec-mf (MF alone)": EngineConfig(hybrid=HybridParams(mf_weight=1.0, cooccurrence_weight=0.0,
                                                                    popularity_weight=0.0), **alone),
        "streamrec-hybrid (the blend alone)": EngineConfig(**alone),
    }
    if model_config is not None:
        rows[f"streamrec-tuned {model_config['model']} (the blend alone)"] = EngineConfig(
            hybrid=hybrid_params(model_config), **alone)
    rows[SERVED] = served.with_changes(diversity=diversity)
    return {name: EngineRanker(config) for name, config in rows.items()}


def evaluate(
    dataset: str,
    limit: int | None = None,
    k: int = 10,
    progress_every: int = 10_000,
    config: dict[str, Any] | None = None,
    sim_events: int = 100_000,
    seed: int = 7,
    baselines: bool = True,
    batch_size: int = DEFAULT_BATCH,
    out: TextIO | None = None,
    progress: TextIO | None | str = "stderr",
    stream: EventStream | None = None,
    diversity: float = 0.0,
    json_path: str | None = None,
) -> dict:
    """Run the protocol and print the table (to ``out``, default stdout; progress lines to
    ``progress``, default stderr, None for none); returns {row name: metrics}.

    ``diversity``: λ of the MMR re-ranking for every streamrec row. Every row's ILD@k is
    measured in the MF item space of the served row (:data:`SERVED`) after each batch, so the
    rows, baselines included, are compared in one space. ``json_path``: the figures are also
    written there as JSON."""
    out = sys.stdout if out is None else out
    progress = sys.stderr if progress == "stderr" else progress
    started = time.perf_counter()
    stream = stream if stream is not None else load_stream(dataset, limit=limit, sim_events=sim_events, seed=seed)
    events = stream.events()
    print(f"streamrec evaluate: {stream.name}, {len(events):,} events ({stream.positives:,} positive), k={k}, "
          f"micro-batches of {batch_size}, diversity λ={diversity:g}", file=out, flush=True)
    engines = streamrec_rankers(config, diversity)
    share = engines[SERVED].config.trial_share
    if share < 1.0:
        print(f"trials: a share of {share:g} scored in every row (STREAMREC_TRIAL_SHARE, the same draw by event id "
              "as the worker's)", file=out, flush=True)
    rankers: dict[str, Any] = dict(baseline_models(trial_share=share)) if baselines else {}
    rankers.update(engines)
    if stream.world is not None:
        rankers["oracle (true affinity)"] = PerEvent(Oracle(stream.world), k=k, trial_share=share)
    for r in rankers.values():
        if hasattr(r, "prepare"):
            r.prepare(stream)
    metrics, catalogue = prequential(events, rankers, fixed_batches(len(events), batch_size), k=k,
                                     progress_every=progress_every, progress=progress,
                                     diversity=engines[SERVED].diversity)
    print(format_table(metrics, catalogue, k=k), file=out)
    print(f"catalogue: {catalogue} items; coverage: distinct items in trials' lists / catalogue; ILD@{k}: mean "
          f"pairwise 1 - cosine of a list's MF rows (the served row's), over trials; events/s: the whole step "
          f"(scoring the trials and learning), in micro-batches of {batch_size}; wall time "
          f"{time.perf_counter() - started:.0f} s", file=out, flush=True)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump({"dataset": stream.name, "events": len(events), "k": k, "batch_size": batch_size,
                       "diversity": diversity, "catalogue": catalogue, "rows": as_json(metrics, catalogue)},
                      fh, indent=2, allow_nan=False)
            fh.write("\n")
    ours = {n: m.recall for n, m in metrics.items() if n.startswith("streamrec")}
    theirs = {n: m.recall for n, m in metrics.items() if not n.startswith(("streamrec", "oracle"))}
    if ours and theirs:
        best, best_base = max(ours, key=ours.get), max(theirs, key=theirs.get)
        verdict = "above" if ours[best] > theirs[best_base] else "NOT above"
        print(f"best streamrec: {best} recall@{k}={ours[best]:.4f}, {verdict} the best baseline "
              f"{best_base} ({theirs[best_base]:.4f})", file=out, flush=True)
    return metrics

