"""Vectors in Redis read by another service: what the engine commits, EmbeddingReader reads back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from consumers.embeddings import EmbeddingReader
from stream.contract import validate_event
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.items import DirectBus, ItemOwner
from stream.engine.messages import MODEL_VERSION
from stream.models.hybrid import HybridParams
from stream.models.items import ItemTable
from stream.state.keys import Keys
from stream.state.redis import RedisState

pytestmark = pytest.mark.integration


def _click(n: int, user: str, item: str):
    return validate_event("click", {"event_id": f"e{n}", "user_id": user, "item_id": item, "ts": 100.0 + n,
                                    "schema": "v1"})


def test_committed_user_and_item_rows_are_read_back_with_their_version(isolated):
    import redis.asyncio as aioredis

    config = EngineConfig(hybrid=HybridParams(mf={"n_factors": 8}), rerank=None, behaviour=None)

    async def learn():
        client = aioredis.Redis.from_url(isolated.redis_url)
        state = RedisState(client, Keys(isolated.redis_prefix), n_factors=8)
        table = ItemTable(config.hybrid)
        engine = Engine(config, state, table, DirectBus(ItemOwner(table, state, clock=lambda: 5.0)),
                        clock=lambda: 5.0)
        await engine.step([_click(0, "ann", "a"), _click(1, "ann", "b"), _click(2, "bob", "a")])
        users = await state.users(["ann"])
        await client.aclose()
        return users["ann"].row, table

    row, table = asyncio.run(learn())
    reader = EmbeddingReader.from_settings(isolated)
    ann = reader.user("ann")
    assert ann is not None and ann.version == MODEL_VERSION and ann.updated_at == 5.0
    np.testing.assert_array_equal(ann.vector, row.vector)
    ids, matrix = reader.items(["b", "missing", "a"])
    assert ids == ["b", "a"] and matrix.shape == (2, 8)
    np.testing.assert_array_equal(matrix, table.mf.model.item_factors[[table.get("b"), table.get("a")]])
    assert reader.item("a").version == MODEL_VERSION and abs(reader.item("a").bias - float(
        table.mf.model.item_biases[table.get("a")])) < 1e-12
    assert reader.user("nobody") is None
