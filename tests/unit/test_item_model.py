"""The item side of the worker without Kafka or Redis: fakes for the producer and the store."""

from __future__ import annotations

import asyncio

import numpy as np

from stream.agents.item_model import ItemFactors, ItemOwner
from stream.agents.messages import decode_item, encode_gradients
from stream.agents.pipeline import Record
from stream.metrics import build
from stream.models.sharded import ShardedMF

PARAMS = {"n_factors": 4, "learning_rate": 0.2, "n_negatives": 0, "seed": 1}


class FlakyWriter:
    def __init__(self, failures: int):
        self.failures, self.rows = failures, []

    def add(self, kind, ids, vectors, **kw):
        self.pending = list(ids)

    async def flush(self):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis restarting")
        self.rows += self.pending
        return len(self.pending)


def _owner(writer):
    sent, rejected = [], []

    async def publish(item_id, payload):
        sent.append(decode_item(payload))

    async def flush():
        pass

    async def reject(rec, reason, detail):
        rejected.append(reason)

    mf = ShardedMF(PARAMS)
    return ItemOwner(mf, publish, flush, writer, build(), reject, clock=lambda: 5.0), mf, sent, rejected


def _gradient_record(offset: int) -> Record:
    user_side = ShardedMF(PARAMS)
    grads = user_side.learn_users([user_side.new_user("u")], [0, 0], ["a", "b"], [1.0, 1.0])
    return Record("item-updates", 0, offset, None, encode_gradients(grads, 4, "test"))


def test_gradients_are_applied_once_even_when_publishing_is_retried():
    writer = FlakyWriter(failures=1)
    owner, mf, sent, rejected = _owner(writer)
    records = [_gradient_record(0), Record("item-updates", 0, 1, None, b"not json")]
    assert owner.apply(records) == 2
    before = mf.model._Q[: mf.n_items].copy()
    try:
        asyncio.run(owner.publish())
        raise AssertionError("the first publish should fail")
    except ConnectionError:
        pass
    assert asyncio.run(owner.publish()) == 2  # the retry publishes what is pending, applies nothing again
    np.testing.assert_array_equal(mf.model._Q[: mf.n_items], before)
    assert rejected == ["invalid_gradient"]  # dead-lettered once, not on the retry
    assert sorted(writer.rows) == ["a", "b"] and {s.version for s in sent} == {1}
    assert asyncio.run(owner.publish()) == 0  # nothing left


def test_a_worker_copy_takes_rows_and_skips_bad_messages():
    owner, mf, sent, _ = _owner(FlakyWriter(0))
    owner.apply([_gradient_record(0)])
    asyncio.run(owner.publish())
    copy = ShardedMF(PARAMS)
    reader = ItemFactors(copy, build(), clock=lambda: 6.0)
    from stream.agents.messages import encode_item

    assert reader.apply([encode_item(s) for s in sent] + [b"{}", None]) == 2
    assert reader.read == 2 and reader.invalid == 1
    row = copy.item_rows(["a"])[0]
    np.testing.assert_array_equal(copy.model._Q[row], mf.model._Q[mf.item_rows(["a"])[0]])
