"""Segment re-ranking: transfer (an untrained layer orders as the blend does), learning moves a
segment towards its own signal, the guard (switching, state round trip), and the engine serving
the blend while a segment's guard says so."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from stream.contract import validate_event
from stream.engine.config import MODEL_NAMES, EngineConfig
from stream.engine.offline import EngineRanker
from stream.engine.rank import Ranking, View
from stream.models.config_io import hybrid_params, load_model_config, rerank_params, save_model_config
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable, ItemUpdate
from stream.models.rerank import COLUMNS, SHARED_LAYER, RerankParams, SegmentGuard, SegmentLayers
from stream.models.rerank.features import scaled
from stream.state.base import SharedState
from stream.state.memory import MemoryState

SEG_POP = COLUMNS.index("seg_pop")


def _candidates(n=30, seed=0) -> np.ndarray:
    """Scaled features of one user's candidates (distinct blend scores)."""
    rng = np.random.default_rng(seed)
    R = rng.random((1, n, len(COLUMNS)))
    R[0, :, 0] = rng.permutation(n)  # the blend's score: no ties
    return scaled(R)[0]


@pytest.mark.parametrize("shared", [True, False])
def test_an_untrained_layer_orders_the_candidates_as_the_blend(shared):
    X = _candidates()
    layers = SegmentLayers(COLUMNS, RerankParams(shared=shared), {})
    blend_order = np.argsort(-X[:, 0], kind="stable").tolist()
    for segment in ("kids", "adults", "never-seen"):
        shared_logits, seg_logits = layers.scores(segment, X)
        assert np.argsort(-seg_logits, kind="stable").tolist() == blend_order
        if shared:
            np.testing.assert_allclose(shared_logits, 4.0 * X[:, 0])  # init_weight on the blend's score
    assert layers.changes() == {}  # building and scoring change nothing


def _view(user, segment, seen=(), history=()):
    return View(user, segment, None, list(history), set(seen))


def _table_with_cooccurrence():
    """An item side with co-occurrence rows: 30 items, each user's items in a run of 6."""
    table = ItemTable(HybridParams(mf_weight=0.0, cooccurrence_weight=1.0, popularity_weight=0.1))
    update = ItemUpdate.empty(table.mf.k)
    rng = np.random.default_rng(4)
    for _ in range(60):
        start = int(rng.integers(0, 25))
        items = [f"i{j}" for j in range(start, start + 6)]
        for n, a in enumerate(items):
            for b in items[:n]:
                update.add_pairs([a, b], [b, a], [1.0, 1.0])
        update.add_counts(items, [1.0] * len(items))
        update.add_popularity(items, [1.0] * len(items), ref=0.0)
    table.apply(update, now=0.0)
    return table


def test_the_engine_serves_the_blends_order_while_the_layers_are_at_their_transfer_start():
    table = _table_with_cooccurrence()
    state = MemoryState()
    views = [_view(f"u{n}", "kids" if n % 2 else "adults", seen={f"i{n}"}, history=[f"i{n}", f"i{n + 3}"])
             for n in range(10)]
    for rerank in (RerankParams(n_candidates=12), RerankParams(n_candidates=12, shared=False)):
        config = EngineConfig(hybrid=table.params, rerank=rerank, behaviour=None, explore_share=0.0)
        ranking, layers = Ranking(config, table), SegmentLayers(COLUMNS, rerank, {})
        ranked = asyncio.run(ranking.rank(views, 10, SharedState(), layers, state))
        for r in ranked:
            assert r.model == MODEL_NAMES["rerank"] and len(r.ids) == 10
            assert r.ids == r.glob == r.seg  # served: the layer's order, which is the blend's
            assert r.candidates.ids[:10] == r.glob and len(r.candidates.ids) == 12


def test_ties_keep_the_blends_order():
    # popularity alone: every item ties; an untrained layer must keep the blend's tie order
    table = ItemTable(HybridParams(mf_weight=0.0, cooccurrence_weight=0.0, popularity_weight=1.0))
    update = ItemUpdate.empty(table.mf.k)
    update.add_popularity([f"i{n}" for n in range(13)], [1.0] * 13, ref=0.0)
    table.apply(update, now=0.0)
    rerank = RerankParams(n_candidates=13)
    config = EngineConfig(hybrid=table.params, rerank=rerank, behaviour=None, explore_share=0.0)
    views = [_view("u", "s", history=["i3"])]
    [r] = asyncio.run(Ranking(config, table).rank(views, 13, SharedState(), SegmentLayers(COLUMNS, rerank, {}),
                                                  MemoryState()))
    assert r.ids == r.glob == [f"i{n}" for n in range(13)]


def test_learning_moves_a_segment_towards_its_signal_and_leaves_others_alone():
    X = _candidates(seed=1)
    X[:, SEG_POP] = 1.0 - X[:, 0]  # what the blend ranks last is the most popular in the segment
    params = RerankParams(learning_rate=0.1, shared=False)
    layers = SegmentLayers(COLUMNS, params, {})
    best = int(np.argmax(X[:, SEG_POP]))  # in "kids", users click what is popular in their segment
    rng = np.random.default_rng(2)
    for _ in range(50):
        others = rng.choice([j for j in range(len(X)) if j != best], 4, replace=False)
        shared, _ = layers.scores("kids", X)
        layers.learn("kids", [(X[best] - X[j], shared[best] - shared[j]) for j in others])
    _, kids = layers.scores("kids", X)
    _, adults = layers.scores("adults", X)
    start = np.argsort(-X[:, 0]).tolist()
    assert start.index(best) == len(X) - 1  # the blend ranks it last ...
    assert int(np.argmax(kids)) == best  # ... the kids' layer learned to put it first
    assert np.argsort(-adults, kind="stable").tolist() == start  # another segment is untouched
    changes = layers.changes()
    assert set(changes) == {"kids"} and changes["kids"]["seg_pop"] > 0
    # the state is the changes: layers built from them score as the learned ones
    _, again = SegmentLayers(COLUMNS, params, changes).scores("kids", X)
    np.testing.assert_allclose(again, kids)


def test_with_a_shared_layer_learning_moves_it_too():
    X = _candidates(seed=3)
    layers = SegmentLayers(COLUMNS, RerankParams(learning_rate=0.1), {})
    best = int(np.argmax(X[:, SEG_POP]))
    for _ in range(20):
        shared, _ = layers.scores("kids", X)
        layers.learn("kids", [(X[best] - X[j], shared[best] - shared[j]) for j in range(len(X)) if j != best][:4])
    assert set(layers.changes()) == {SHARED_LAYER, "kids"}


# -- the guard ------------------------------------------------------------------------
def test_guard_switches_to_global_when_worse_and_back_when_it_recovers(caplog):
    guard = SegmentGuard("teens", window=50, margin=0.05, min_trials=20, z=0.0)
    with caplog.at_level(logging.WARNING, logger="stream.models.rerank.guard"):
        switched = [guard.update(0, 1) for _ in range(20)]  # the segment model misses, global hits
    assert switched.index(True) == 19 and not guard.serving_segment
    assert guard.switches[-1]["to"] == "global" and "now serves the global ranking" in caplog.text
    while not guard.serving_segment:
        guard.update(1, 0)
    assert [s["to"] for s in guard.switches] == ["global", "segment"]
    assert guard.mean_difference >= 0.0


def test_guard_waits_for_evidence_beyond_noise():
    rng = np.random.default_rng(0)
    guard = SegmentGuard("noisy", window=500, margin=0.0, min_trials=100, z=2.0)
    for _ in range(5000):  # equally good models, independent hits: no switch
        guard.update(rng.random() < 0.2, rng.random() < 0.2)
    assert guard.switches == []
    for _ in range(500):  # the segment model now hits half as often
        guard.update(rng.random() < 0.1, rng.random() < 0.2)
    assert [s["to"] for s in guard.switches] == ["global"]


def test_guard_state_round_trips_and_continues_identically():
    rng = np.random.default_rng(5)
    args = {"window": 30, "margin": 0.02, "min_trials": 10, "z": 0.5}
    guard = SegmentGuard("s", **args)
    for n in range(120):  # worse for a while, then better: switches both ways
        guard.update(rng.random() < (0.1 if n < 60 else 0.6), rng.random() < 0.4)
    state = guard.to_state()
    assert all(isinstance(v, str) for v in state.values())
    restored = SegmentGuard.from_state("s", state, **args)
    assert (restored.trials, restored.version, restored.serving_segment, restored.mean_difference,
            restored.standard_error) == (guard.trials, guard.trials, guard.serving_segment, guard.mean_difference,
                                         guard.standard_error)
    assert restored.to_state() == state  # the switch count travels too
    tail = [(rng.random() < 0.1, rng.random() < 0.5) for _ in range(200)]
    assert [guard.update(*t) for t in tail] == [restored.update(*t) for t in tail]
    assert restored.to_state() == guard.to_state() and int(state["switches"]) >= 1


def test_a_guard_state_kept_for_another_window_restarts_its_window_but_not_its_serving():
    guard = SegmentGuard("s", window=4, margin=0.0, min_trials=2, z=0.0)
    for _ in range(3):
        guard.update(0, 1)
    assert not guard.serving_segment
    other = SegmentGuard.from_state("s", guard.to_state(), window=8, margin=0.0, min_trials=2, z=0.0)
    assert other.trials == 0 and other.version == 3 and not other.serving_segment
    assert SegmentGuard.from_state("s", None, window=8, min_trials=2).serving_segment


class _Stream:
    def __init__(self):
        self.n = 0

    def click(self, user, item):
        self.n += 1
        return validate_event("click", {"event_id": f"e{self.n}", "user_id": user, "item_id": item,
                                        "ts": float(self.n), "schema": "v1"})


def _served(ranker, user):
    return ranker.run(ranker.engine.recommend([user], 10))[user][1]


def test_a_bad_segment_layer_is_guarded_and_the_segment_served_the_blend():
    # layers that barely learn: the sabotage below stays until it is repaired
    rerank = RerankParams(n_candidates=20, learning_rate=1e-6, guard_window=40, guard_min_trials=20,
                          guard_margin=0.0, guard_z=0.0)
    ranker = EngineRanker(EngineConfig(hybrid=HybridParams(mf={"n_factors": 8, "seed": 3}), rerank=rerank,
                                       behaviour=None, explore_share=0.0))
    users = [f"u{j}" for j in range(30)]
    for j, u in enumerate(users):
        ranker.apply_profile(u, {"segment": "odd" if j % 2 else "even"})
    rng, events = np.random.default_rng(0), _Stream()
    for _ in range(20):
        ranker.step([events.click(users[int(rng.integers(30))], f"i{int(rng.integers(100))}") for _ in range(20)])
    odd, even = "segment:odd", "segment:even"
    assert ranker.state.guards[odd]["serving"] == "segment" and ranker.state.guards[odd]["switches"] == "0"
    even_guard = dict(ranker.state.guards[even])

    def targeted_trials(n, pick):
        """Odd users click an item the blend ranks high for them."""
        for _ in range(n):
            u = users[2 * int(rng.integers(15)) + 1]
            ranker.step([events.click(u, _served(ranker, u).glob[pick()])])

    # sabotage the odd segment's layer: it now orders its candidates upside down
    ranker.state.layers[odd] = {"base": -6.0}
    targeted_trials(60, lambda: int(rng.integers(3)))
    guard = ranker.state.guards[odd]
    assert guard["serving"] == "global" and guard["switches"] == "1"
    served = _served(ranker, "u1")
    assert served.model == MODEL_NAMES["hybrid"] and served.ids == served.glob != served.seg
    assert ranker.state.guards[even] == even_guard  # another segment's guard is not involved
    # repaired (back at the transfer start): the segment recovers
    ranker.state.layers[odd] = {}
    targeted_trials(60, lambda: 0)
    assert ranker.state.guards[odd]["serving"] == "segment" and ranker.state.guards[odd]["switches"] == "2"
    assert _served(ranker, "u1").model == MODEL_NAMES["rerank"]
    ranker.close()


def test_a_segment_with_a_distinct_taste_gains_from_its_reranker():
    """Known answer: 80 % of users like items a0..a19, a minority segment likes b0..b19. The
    blend (popularity alone) serves everyone the majority's items; segment popularity lets
    the minority's layer lift its own items."""
    rng = np.random.default_rng(7)
    ranker = EngineRanker(EngineConfig(
        hybrid=HybridParams(mf_weight=0.0, cooccurrence_weight=0.0, popularity_weight=1.0),
        rerank=RerankParams(n_candidates=40, learning_rate=0.1, seed=1), behaviour=None, explore_share=0.0, top_k=5))
    majority, minority = [f"m{u}" for u in range(80)], [f"n{u}" for u in range(20)]
    for u in majority:
        ranker.apply_profile(u, {"segment": "majority"})
    for u in minority:
        ranker.apply_profile(u, {"segment": "minority"})
    hits = {"segment:majority": [0, 0], "segment:minority": [0, 0]}  # [served, blend]
    events, batch = _Stream(), []
    for t in range(3000):
        u = majority[int(rng.integers(80))] if rng.random() < 0.8 else minority[int(rng.integers(20))]
        prefix = "a" if u.startswith("m") else "b"
        batch.append(events.click(u, f"{prefix}{min(int(rng.zipf(1.5)) - 1, 19)}"))
        if len(batch) == 50:
            ranker.step(batch)
            batch = []
            if t > 1000:  # after a warm-up
                for trial in ranker.last.trials:
                    hits[trial.segment][0] += trial.rank is not None
                    hits[trial.segment][1] += trial.glob_hit
    served, blend = hits["segment:minority"]
    assert served > 1.5 * blend + 10, hits
    assert hits["segment:majority"][0] >= hits["segment:majority"][1] - 5, hits
    ranker.close()


# -- parameters and the configuration file ---------------------------------------------------
def test_segment_parameters_override_the_defaults_and_are_checked():
    p = RerankParams(guard_window=50, segment_params={"odd": {"learning_rate": 0.05, "guard_min_trials": 80}})
    assert p.of("odd", "learning_rate") == 0.05 and p.of("even", "learning_rate") == 0.02
    assert p.guard_args("odd")["min_trials"] == 50  # never more than the window
    with pytest.raises(ValueError, match="may override only"):
        RerankParams(segment_params={"odd": {"n_factors": 3}})
    with pytest.raises(ValueError, match="n_candidates must be >= 1"):
        RerankParams(n_candidates=0)


def test_a_segmented_configuration_file_loads_and_builds(tmp_path):
    path = tmp_path / "segmented.json"
    params = {"global_model": "HybridRanker", "global_params": {"mf_weight": 0.5, "mf": {"n_factors": 8}},
              "n_candidates": 30, "segment_params": {"odd": {"learning_rate": 0.05, "guard_margin": 0.02}}}
    save_model_config(path, "SegmentedRanker", params, {"dataset": "test"})
    config = load_model_config(path)
    assert config["model"] == "SegmentedRanker" and config["params"] == params
    assert hybrid_params(config).mf_weight == 0.5 and hybrid_params(config).mf_params["n_factors"] == 8
    rp = rerank_params(config)
    assert rp.n_candidates == 30 and rp.of("odd", "guard_margin") == 0.02 and rp.of("even", "guard_margin") == 0.01
    with pytest.raises(ValueError, match="may override only"):
        save_model_config(tmp_path / "bad.json", "SegmentedRanker", dict(params, segment_params={"odd": {"nope": 1}}))
