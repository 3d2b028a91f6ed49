"""The engine in one process, in memory: what ``streamrec evaluate`` and ``tune`` run.

:class:`EngineRanker` is the :class:`~stream.models.base.Ranker` face of an
:class:`~stream.engine.engine.Engine` over :class:`~stream.state.memory.MemoryState`, whose
item updates go to an owner in the same process right after each batch. Its clock is event
time (the newest event seen), so a run is deterministic.

Examples
--------
>>> from stream.contract import validate_event
>>> def click(n, user, item):
...     return validate_event("click", {"event_id": f"e{n}", "user_id": user, "item_id": item, "ts": float(n),
...                                     "schema": "v1"})
>>> ranker = EngineRanker(EngineConfig(rerank=None, behaviour=None, explore_share=0.0))
>>> _ = ranker.step([click(0, "a", "x"), click(1, "a", "y"), click(2, "b", "x")])
>>> trials = ranker.step([click(3, "b", "y")])
>>> [(t.user_id, t.item_id, t.ranked[:1]) for t in trials]
[('b', 'y', ['y'])]
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

import numpy as np

from stream.contract import Event
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine, StepResult
from stream.engine.items import DirectBus, ItemOwner
from stream.engine.messages import ItemInit
from stream.models.base import Ranker, Trial
from stream.models.diversity import table_diversity
from stream.models.items import ItemTable
from stream.state.memory import MemoryState

__all__ = ["EngineRanker"]


class EngineRanker(Ranker):
    """The engine with in-memory state (see the module docstring).

    Parameters
    ----------
    config
        What to run (default: :class:`EngineConfig`'s defaults).
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        # one process owns every item here: splitting an update by owner changes nothing but the work
        self.config = (config if config is not None else EngineConfig()).with_changes(partitions=1)
        features = self.config.behaviour.features if self.config.behaviour is not None else []
        self.state = MemoryState(features)
        self.table = ItemTable(self.config.hybrid)
        self.owner = ItemOwner(self.table, self.state, clock=self._now, keep_rows=False)
        self.engine = Engine(self.config, self.state, self.table, DirectBus(self.owner), clock=self._now)
        self._time = 0.0
        self._loop = asyncio.new_event_loop()
        self.last: StepResult | None = None

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        from stream.models.hybrid import HybridParams

        return {"config": EngineConfig(hybrid=HybridParams(mf={"n_factors": 8}), explore_share=0.1)}

    def _now(self) -> float:
        return self._time

    def run(self, coro):
        """Run one of the engine's coroutines to its end (the ranker's own event loop)."""
        return self._loop.run_until_complete(coro)

    def step(self, events: Sequence[Event]) -> list[Trial]:
        events = list(events)
        if events:
            self._time = max(self._time, max(float(ev.ts) for ev in events))
        result = self.run(self.engine.step(events))
        self.last = result
        return [Trial(t.position, t.event.user_id, t.event.item_id, t.served, t.segment) for t in result.trials]

    def diversity(self, lists: list[list[str]]) -> np.ndarray:
        """Each list's intra-list diversity in this engine's MF item space as it stands
        (:func:`stream.models.diversity.table_diversity`; items it does not know are left out)."""
        return table_diversity(self.table, lists)

    def recommend(self, user_id: str, k: int = 10) -> list[str]:
        out = self.run(self.engine.recommend([user_id], k, reasons=False))
        return out[user_id][1].ids

    def apply_profile(self, user_id: str, attributes: dict[str, str], ts: float = 0.0) -> str:
        """A profile from the users topic; returns its segment."""
        applied = self.run(self.engine.apply_profile(user_id, attributes, ts))
        # None: dropped, the user erased after it (never offline, where nothing is erased)
        return applied[0] if applied is not None else self.engine.config.default_segment

    def apply_item(self, item_id: str, categories: list[str]) -> None:
        """An item from the items topic: its owner registers it and starts its row from its
        categories, as the worker's catalogue agent has it done."""
        init = ItemInit(item_id, list(categories))
        self.run(self.owner.apply(0, [(init.entry_id, init)]))

    def prepare(self, stream) -> None:
        """Apply a stream's profiles and catalogue (an :class:`~stream.evaluation.streams.EventStream`),
        before its interactions, as a worker that read them first would have."""
        for p in stream.profiles:
            self.apply_profile(p["user_id"], p.get("attributes") or {}, float(p.get("ts", 0.0)))
        for item in stream.catalogue:
            self.apply_item(item["item_id"], item.get("categories") or [])

    def close(self) -> None:
        self._loop.close()
