"""Ranking (stream/engine/rank.py): seen items are left out, a list has no repeats and follows
the blend, a user without signal is served their segment's trending items."""

from __future__ import annotations

import asyncio

import numpy as np

from stream.engine.config import MODEL_NAMES, EngineConfig
from stream.engine.rank import Ranking, View
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable, ItemUpdate
from stream.state.base import SharedState
from stream.state.memory import MemoryState

HYBRID = HybridParams(mf={"n_factors": 6, "n_negatives": 2, "seed": 5})
CONFIG = EngineConfig(hybrid=HYBRID, rerank=None, behaviour=None, explore_share=0.0, top_k=5)
ITEMS = [f"i{n}" for n in range(20)]


def _table():
    """20 items with MF rows, co-occurrence rows and popularity; and a user who learned."""
    rng = np.random.default_rng(1)
    table = ItemTable(HYBRID)
    table.rows(ITEMS)
    user = table.mf.new_user("w")
    grads = table.mf.learn_users([user], [0] * 8, ITEMS[:8], [1.0] * 8)
    update = ItemUpdate(grads)
    a, b = list(rng.choice(ITEMS, 80)), list(rng.choice(ITEMS, 80))
    update.add_pairs(a + b, b + a, [1.0] * 160)
    update.add_counts(ITEMS, [1.0] * 20)
    update.add_popularity(ITEMS[:10], [float(n) for n in range(10, 0, -1)], ref=0.0)  # i0 the most popular
    table.apply(update, now=0.0)
    return table, user


def _rank(views, state=None, k=5, config=CONFIG, reasons=True):
    table = _rank.table
    return asyncio.run(Ranking(config, table).rank(views, k, SharedState(), None, state or MemoryState(),
                                                   reasons=reasons))


_rank.table, LEARNED = _table()


def test_warm_lists_leave_out_seen_items_have_no_repeats_and_follow_the_blend():
    seen = {"i0", "i1", "i2", "i3", "i4"}
    views = [View("w", "all", LEARNED, ["i0", "i1"], seen),  # a row and a history
             View("h", "all", None, ["i5"], {"i5", "i6"}),  # a history only
             View("r", "all", LEARNED, [], set(ITEMS[:17]))]  # 3 items left
    ranked = _rank(views)
    table = _rank.table
    G, _, _ = Ranking(CONFIG, table).blend_matrix(views, table.n_items)
    for v, r, g in zip(views, ranked, G):
        assert r.model == MODEL_NAMES["hybrid"]
        assert len(set(r.ids)) == len(r.ids) == min(5, 20 - len(v.seen))
        assert not any(i in v.seen for i in r.ids)
        scores = [g[table.get(i)] for i in r.ids]
        assert scores == sorted(scores, reverse=True)
        unseen_best = sorted((g[table.get(i)] for i in ITEMS if i not in v.seen), reverse=True)[:5]
        assert scores == unseen_best
        assert [s for _, s in r.items] == scores
    assert {reason["kind"] for reason in ranked[1].reasons} <= {"because_you_liked", "popular"}


def test_a_user_without_signal_is_served_their_segments_trending_items_then_the_global_ones():
    state = MemoryState()
    state.popularity = {"kids": {"i12": 3.0, "i15": 5.0, "i18": 1.0}, "adults": {"i19": 9.0}}
    views = [View("new-kid", "kids", None, [], set()), View("seen-kid", "kids", None, [], {"i15", "i0"}),
             View("stranger", "nobody-yet", None, [], set())]
    kid, seen_kid, stranger = _rank(views, state)
    assert kid.model == seen_kid.model == stranger.model == MODEL_NAMES["cold"]
    assert kid.ids == ["i15", "i12", "i18", "i0", "i1"]  # the segment's, best first; then the global popularity
    assert [r["kind"] for r in kid.reasons] == ["popular_in_segment"] * 3 + ["popular"] * 2
    assert kid.reasons[0]["segment"] == "kids"
    assert seen_kid.ids == ["i12", "i18", "i1", "i2", "i3"]  # seen items left out of both parts
    assert stranger.ids == ["i0", "i1", "i2", "i3", "i4"]  # a segment with no popularity yet: the global one
    # a learned user of the same segment is ranked by the blend instead
    [learned] = _rank([View("w", "kids", LEARNED, [], set())], state)
    assert learned.model == MODEL_NAMES["hybrid"]


def test_an_empty_item_side_serves_empty_lists():
    empty = ItemTable(HYBRID)
    ranked = asyncio.run(Ranking(CONFIG, empty).rank([View("a", "all", None, ["x"], set()), View("b", "all", None, [], set())],
                                                     5, SharedState(), None, MemoryState()))
    assert [r.ids for r in ranked] == [[], []]


def test_a_shorter_list_is_the_start_of_a_longer_one_when_scores_tie():
    """Guards a bug (stream/engine/rank.py, Ranking._top; the same in stream/models/base.py,
    top_k): ties are to be broken by the lower row, but ``np.argpartition`` keeps any of the
    items tied at the cut, so the top-1 of popularity [0, 0, 1, 1] is 'd', not 'c', and a
    list of k is not the start of a list of k + 1."""
    hybrid = HybridParams(mf_weight=0.0, cooccurrence_weight=0.0, popularity_weight=1.0)
    table = ItemTable(hybrid)
    table.rows(["a", "b", "c", "d"])
    update = ItemUpdate.empty(table.mf.k)
    update.add_popularity(["c", "d"], [1.0, 1.0], ref=0.0)
    table.apply(update, now=0.0)
    config = CONFIG.with_changes(hybrid=hybrid)
    lists = {k: asyncio.run(Ranking(config, table).rank([View("u", "all", None, ["x"], set())], k, SharedState(), None,
                                                        MemoryState()))[0].ids for k in (1, 2, 3, 4)}
    assert lists[4] == ["c", "d", "a", "b"]
    assert lists == {k: lists[4][:k] for k in lists}


class GrowingState(MemoryState):
    """While a ranking awaits segment popularity, the item-factors reader adds rows to the table
    (as in a worker)."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    async def segment_scores(self, wanted):
        from stream.models.items import ItemRow
        from stream.models.sharded import ItemState

        k = self.table.mf.k
        for n in range(5):  # fresh items: a row from their owner, no positive signal yet
            state = ItemState(f"late-{n}", np.full(k, 0.1, dtype=np.float32), 0.0, 0.0, 0.0, 0.0, 1, 1.0)
            self.table.load_row(ItemRow(f"late-{n}", state, 0.0, np.zeros(0, dtype=np.int64),
                                        np.zeros(0, dtype=np.float32), 0.0, 0.0))
        return await super().segment_scores(wanted)


def test_rows_added_while_a_ranking_awaits_do_not_break_it():
    """Guards a bug seen with two workers (an IndexError in the explore step held a worker):
    the fresh-item mask was taken from the table after the await, longer than the blend's matrix."""
    from stream.models.rerank import RerankParams

    table, user = _table()
    table.mf.model.add_popularity(np.arange(table.n_items), np.ones(table.n_items))  # none of these is fresh
    config = CONFIG.with_changes(rerank=RerankParams(n_candidates=12), explore_share=1.0,
                                 explore_max_positive_weight=0.5)  # the late rows alone are fresh
    from stream.models.rerank import COLUMNS, SegmentLayers

    layers = SegmentLayers(COLUMNS, config.rerank, {})
    n = table.n_items
    views = [View("w", "all", user, ["i0"], {"i0"}, explore=True)]
    [ranked] = asyncio.run(Ranking(config, table).rank(views, 5, SharedState(), layers, GrowingState(table)))
    assert table.n_items == n + 5 and len(ranked.items) == 5 and not ranked.explored


def test_a_cold_list_never_serves_a_row_known_by_key_only():
    """Guards a review finding: the global popularity that fills a cold list served unnamed rows."""
    from stream.models.items import item_key

    table = ItemTable(HYBRID)
    table.rows(["a", "b"])
    table.rows_of_keys(np.array([item_key(f"later-{n}") for n in range(30)]))  # 30 unnamed rows
    ranked = asyncio.run(Ranking(CONFIG.with_changes(top_k=10), table).rank(
        [View("new", "nowhere", None, [], set())], 10, SharedState(), None, MemoryState()))
    assert ranked[0].ids == ["a", "b"]
