"""Diversity through the engine: the option ``EngineConfig.diversity`` (STREAMREC_DIVERSITY_LAMBDA),
MMR in :class:`~stream.engine.rank.Ranking` for the lists it serves (trials and pushes alike),
the ILD ``evaluate`` reports, and the live metrics of the lists sent."""

from __future__ import annotations

import asyncio
import math

import pytest
from pydantic import ValidationError

from stream.config import Settings
from stream.engine.config import EngineConfig
from stream.engine.offline import EngineRanker
from stream.engine.rank import POOL_FACTOR, Ranking, View
from stream.evaluation.prequential import fixed_batches, prequential
from stream.evaluation.run import SERVED, served_config
from stream.evaluation.streams import load_stream
from stream.models.diversity import table_diversity
from stream.models.hybrid import HybridParams
from tests.unit.engine.test_rank import CONFIG, ITEMS, LEARNED, _rank
from tests.unit.test_ingestor import _click, _ingest, _rec


def test_the_option_comes_from_the_setting_and_is_described():
    config = EngineConfig.from_settings(Settings(diversity_lambda=0.3, segment_models=False, behaviour_segments=0))
    assert config.diversity == 0.3 and config.describe()["diversity"] == 0.3
    assert EngineConfig.from_settings(Settings()).diversity == 0.0  # off by default


@pytest.mark.parametrize("bad", [-0.5, 1.5, float("nan")])
def test_a_bad_lambda_is_refused_by_the_config_and_the_setting(bad):
    with pytest.raises(ValueError, match=r"EngineConfig: diversity: the MMR weight λ must be in \[0, 1\]"):
        EngineConfig(diversity=bad)
    with pytest.raises(ValidationError, match="diversity_lambda"):
        Settings(diversity_lambda=bad)


def test_evaluate_refuses_a_bad_lambda_on_its_command_line(capsys):
    from stream.evaluation.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--dataset", "simulator", "--diversity", "2"])
    assert "--diversity: the MMR weight λ must be in [0, 1]" in capsys.readouterr().err


SEEN = [{"i0", "i1", "i2"}, {"i5", "i6"}, set(ITEMS[:14])]  # the last: fewer unseen items than the pool


def _views():
    return [View("w", "all", LEARNED, ["i0", "i1"], SEEN[0]), View("h", "all", None, ["i5"], SEEN[1]),
            View("r", "all", LEARNED, [], SEEN[2])]


def test_mmr_lists_come_from_the_wider_pool_without_repeats_or_seen_items():
    config = CONFIG.with_changes(diversity=0.7)
    plain, diverse = _rank(_views(), k=4), _rank(_views(), k=4, config=config)
    table = _rank.table
    G, _, _ = Ranking(CONFIG, table).blend_matrix(_views(), table.n_items)
    for seen, p, d, g in zip(SEEN, plain, diverse, G):
        assert len(set(d.ids)) == len(d.ids) == len(p.ids)
        assert not set(d.ids) & seen
        pool = sorted((i for i in ITEMS if i not in seen), key=lambda i: -g[table.get(i)])[: POOL_FACTOR * 4]
        assert set(d.ids) <= set(pool)
        assert d.ids[0] == p.ids[0]  # the most relevant item is picked first
        assert [s for _, s in d.items] == [g[table.get(i)] for i in d.ids]  # each keeps its blend score
    ild = table_diversity(table, [r.ids for r in plain]), table_diversity(table, [r.ids for r in diverse])
    assert (ild[1] >= ild[0] - 1e-6).all() and (ild[1] > ild[0] + 0.01).any()


def test_lambda_zero_serves_what_no_diversity_option_served():
    assert [r.items for r in _rank(_views(), config=CONFIG.with_changes(diversity=0.0))] == \
        [r.items for r in _rank(_views(), config=CONFIG)]


def _run(config, stream):
    ranker = EngineRanker(config)
    ranker.prepare(stream)
    events = stream.events()
    metrics, catalogue = prequential(events, {SERVED: ranker}, fixed_batches(len(events), 100), progress=None,
                                     diversity=ranker.diversity)
    return metrics[SERVED], catalogue


def test_mmr_raises_the_measured_diversity_of_the_served_engine_on_a_simulated_world():
    """The served configuration (re-rankers, guards, behaviour segments, exploration) on a small
    seeded simulator world: each λ > 0 raises ILD@10 over the trials, λ = 0.7 more than 0.3."""
    stream = load_stream("simulator", sim_events=6000, seed=3)
    base = served_config().with_changes(hybrid=HybridParams(mf={"n_factors": 16, "seed": 3}))
    runs = {lam: _run(base.with_changes(diversity=lam), stream)[0] for lam in (0.0, 0.3, 0.7)}
    assert runs[0.0].trials == runs[0.3].trials == runs[0.7].trials > 300
    assert runs[0.0].ild_lists > 300 and not math.isnan(runs[0.0].ild)
    assert runs[0.3].ild > runs[0.0].ild + 0.01
    assert runs[0.7].ild > runs[0.3].ild + 0.01


def test_lists_sent_are_measured_live_diversity_per_segment_and_catalogue_coverage():
    config = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4, "seed": 1}), rerank=None, behaviour=None,
                          explore_share=0.0, top_k=3, partitions=1)
    ing, sink, _ = _ingest(config=config)
    # 3 users on 6 items, each seeing 2: lists of 3 from the 4 others
    clicks = [_rec(n, _click(n, user=f"u{n % 3}", item=f"i{n % 6}"), key=f"u{n % 3}".encode()) for n in range(12)]
    asyncio.run(ing.handle(clicks))
    m = ing.metrics
    sent = [payload for _, payload in sink.recs]
    assert sent, "no list was pushed"
    measured = sum(1 for p in sent if len(p["items"]) >= 2)
    hist = m.registry.get_sample_value("streamrec_list_diversity_count", {"segment": "all", "experiment": "none", "variant": "none"})
    assert hist == measured > 0
    total = m.registry.get_sample_value("streamrec_list_diversity_sum", {"segment": "all", "experiment": "none", "variant": "none"})
    assert 0.0 < total <= 2.0 * measured
    distinct = {i["item_id"] for p in sent for i in p["items"]}
    assert m.registry.get_sample_value("streamrec_pushed_coverage_ratio") == pytest.approx(len(distinct) / 6)
    assert m.registry.get_sample_value("streamrec_recommendations_pushed_total", {"segment": "all"}) == len(sent)


def test_lists_sent_and_explored_ones_are_counted_per_segment():
    """Every list may explore; items clicked once (r*) are fresh, the p* items clicked by many are
    not: the second batch's lists give their last slot to a fresh item."""
    config = EngineConfig(hybrid=HybridParams(mf={"n_factors": 4, "seed": 1}), rerank=None, behaviour=None,
                          explore_share=1.0, explore_max_positive_weight=1.5, top_k=3, partitions=1)
    ing, sink, _ = _ingest(config=config)
    clicks = [(f"u{u}", f"p{(u + p) % 6}") for u in range(8) for p in range(4)] + [(f"x{r}", f"r{r}") for r in range(6)]
    clicks += [(f"u{u}", f"p{(u + 5) % 6}") for u in range(8)]
    recs = [_rec(n, _click(n, user=u, item=i), key=u.encode()) for n, (u, i) in enumerate(clicks)]
    asyncio.run(ing.handle(recs[:38]))
    asyncio.run(ing.handle(recs[38:]))
    sent = [payload for _, payload in sink.recs]
    explored = sum(1 for p in sent if p["items"] and p["items"][-1].get("reason") == {"kind": "explore"})
    value = ing.metrics.registry.get_sample_value
    assert value("streamrec_recommendations_pushed_total", {"segment": "all"}) == len(sent) > 0
    assert value("streamrec_explored_total", {"segment": "all"}) == explored > 0


def test_an_experiment_variant_serves_mmr_with_its_own_lambda():
    from stream.experiments.definition import Variant, variant_config

    config = variant_config(CONFIG, Variant("mmr", 0.5, {"diversity": 0.7}))
    assert config.diversity == 0.7 and CONFIG.diversity == 0.0
    table = _rank.table
    served = _rank(_views(), k=4, config=config)
    assert [r.items for r in served] == [r.items for r in _rank(_views(), k=4, config=CONFIG.with_changes(diversity=0.7))]
    assert table_diversity(table, [r.ids for r in served]).mean() > \
        table_diversity(table, [r.ids for r in _rank(_views(), k=4)]).mean()
