"""The worker's Kafka publisher against a fake librdkafka producer (unit level; the real one
is exercised by every integration test that reads recommendations, dead letters or item rows)."""

from __future__ import annotations

import asyncio

import pytest

from stream.engine.validate import Record
from stream.engine.publisher import DeliveryError, KafkaPublisher
from stream.config import Settings


class FakeMessage:
    def __init__(self, topic, partition):
        self._topic, self._partition = topic, partition

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition


class FakeProducer:
    """Queues produce() calls; poll() reports the first ``deliver`` of them, failing the ones
    whose key is in ``fail``; ``full`` produce() calls raise BufferError first."""

    def __init__(self, fail=(), full=0):
        self.queued, self.produced, self.fail, self.full, self.polls = [], [], set(fail), full, 0
        self.deliver = 10**9

    def produce(self, topic, value=None, key=None, on_delivery=None, **kw):
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.produced.append((topic, key, value, kw))
        self.queued.append((topic, key, kw, on_delivery))

    def poll(self, timeout):
        self.polls += 1
        ready, self.queued = self.queued[: self.deliver], self.queued[self.deliver:]
        for topic, key, kw, cb in ready:
            cb("broker said no" if key in self.fail else None, FakeMessage(topic, kw.get("partition", 0)))
        return len(ready)

    def flush(self, timeout):
        self.poll(0)
        return len(self.queued)


def _publisher(producer, **kw):
    return KafkaPublisher(Settings(topic_prefix="t."), producer=producer, **kw)


def test_every_kind_goes_to_its_topic_with_key_partition_and_headers():
    async def main():
        prod = FakeProducer()
        pub = _publisher(prod)
        rec = Record("t.clicks", 2, 7, b"u1", b"{bad")
        await pub.dead_letter(rec, "not_json", "no")
        await pub.recommendations("u1", b"list")
        await pub.drift_alert("seg", b"alert")
        await pub.item_update(3, b"update")
        await pub.item_row("i9", b"row")
        await pub.flush()
        return prod.produced

    produced = asyncio.run(main())
    assert [(t, k, v) for t, k, v, _ in produced] == [
        ("t.events.dlq", b"u1", b"{bad"), ("t.recommendations", b"u1", b"list"), ("t.alerts.drift", b"seg", b"alert"),
        ("t.item-updates", None, b"update"), ("t.item-factors", b"i9", b"row")]
    headers = dict(produced[0][3]["headers"])
    assert headers["streamrec.reason"] == b"not_json" and headers["streamrec.source.offset"] == b"7"
    assert produced[3][3] == {"partition": 3}


def test_flush_waits_for_delivery_and_raises_on_a_failed_message():
    async def main():
        prod = FakeProducer(fail={b"u2"})
        prod.deliver = 0  # nothing is delivered until flush() has polled a few times
        pub = _publisher(prod)
        await pub.recommendations("u1", b"a")
        await pub.recommendations("u2", b"b")

        async def let_through():
            await asyncio.sleep(0.01)
            prod.deliver = 10**9

        asyncio.get_running_loop().create_task(let_through())
        with pytest.raises(DeliveryError, match="1 of 2 messages failed.*broker said no"):
            await pub.flush()
        assert prod.polls > 2
        await pub.flush()  # the failure was reported once, to the task that sent the message

    asyncio.run(main())


def test_flush_times_out_when_the_broker_never_answers():
    async def main():
        prod = FakeProducer()
        prod.deliver = 0
        pub = _publisher(prod, flush_timeout_seconds=0.05)
        await pub.item_row("i1", b"row")
        with pytest.raises(DeliveryError, match="1 of 1 messages not delivered within"):
            await pub.flush()

    asyncio.run(main())


def test_a_task_waits_for_its_own_messages_only():
    async def main():
        prod = FakeProducer(fail={b"other"})
        prod.deliver = 0
        pub = _publisher(prod)
        other_sent = asyncio.Event()
        release = asyncio.Event()

        async def other():
            await pub.recommendations("other", b"x")
            other_sent.set()
            await release.wait()
            with pytest.raises(DeliveryError):
                await pub.flush()

        task = asyncio.get_running_loop().create_task(other())
        await other_sent.wait()
        await pub.recommendations("mine", b"y")
        prod.deliver = 10**9
        await pub.flush()  # the other task's failed message is not this task's error
        release.set()
        await task

    asyncio.run(main())


def test_a_full_queue_is_waited_out_not_dropped():
    async def main():
        prod = FakeProducer(full=3)
        pub = _publisher(prod)
        await pub.recommendations("u1", b"a")
        await pub.flush()
        return prod

    prod = asyncio.run(main())
    assert [k for _, k, _, _ in prod.produced] == [b"u1"]
