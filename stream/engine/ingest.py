"""What the worker does with a micro-batch of Kafka records, free of Faust.

    records -> validate -> bad: dead-letter topic (original bytes + reason), the rest goes on
            -> Engine.step (load, score the trials, learn, commit, deliver the item updates)
            -> KPIs (Prometheus, drift detectors) -> the batch log (when configured)
            -> push the lists that changed -> wait until Kafka has everything sent (item updates,
               lists, dead letters, alerts: one wait) -> the item updates leave the outbox

A batch is never dropped: a store or broker hiccup is retried until it passes (every effect is
idempotent: the commit claims the events' ids), and an event that fails for another reason is
isolated, dead-lettered with reason ``processing_error``, and the rest of the batch applied.

:attr:`Ingest.lock` is held from a batch's load to its lists' push: an erasure in this worker
(:mod:`stream.engine.erase`) waits for it, so no list made before the erasure goes out after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

import redis.exceptions

from stream.engine.alerts import DriftWatch
from stream.engine.engine import Engine, StepResult
from stream.engine.kpis import Kpis
from stream.engine.push import Pusher
from stream.engine.validate import Record, validate_records
from stream.signals import marks_seen

__all__ = ["Ingest", "BatchOutcome", "TRANSIENT", "Sink"]

log = logging.getLogger(__name__)

#: Failures worth waiting out: the store is restarting or the network hiccuped; on a Redis Cluster,
#: the node of the slot is away (down, failing over, its slot moving) or no node answers.
TRANSIENT = (
    ConnectionError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterDownError,  # and MasterDownError
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.RedisClusterUnreachableError,
)


class Sink(Protocol):
    async def dead_letter(self, record: Record, reason: str, detail: str) -> None: ...

    async def recommendations(self, user_id: str, payload: bytes) -> None: ...

    async def drift_alert(self, segment: str, payload: bytes) -> None: ...

    async def flush(self) -> None: ...


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    dropped: int = 0  # events of erased users, at or before their erasure
    invalid: int = 0
    trials: int = 0
    hits: int = 0
    pushed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class Ingest:
    """Handles the ingest agent's batches (see the module docstring).

    Parameters
    ----------
    engine, pusher
        The batch step and the lists' delivery.
    sink
        The worker's publisher (dead letters, lists, alerts; ``flush`` waits for delivery).
    metrics
        :class:`stream.metrics.Metrics`.
    topic_types
        Real topic name -> event type.
    drift
        The drift detectors (None: none).
    batch_log
        A file to append one JSON line per committed batch to (its event ids in order): the
        order and boundaries ``evaluate --through-worker`` replays offline. None: no log.
    attribution
        :class:`stream.experiments.attribution.Attribution`: a batch's events that name a served
        list are counted against it (None: not).
    """

    def __init__(self, engine: Engine, pusher: Pusher, sink: Sink, metrics, *, topic_types: dict[str, str],
                 drift: DriftWatch | None = None, batch_log: str | None = None, attribution=None,
                 retry_delays: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0, 5.0)) -> None:
        self.engine = engine
        self.pusher = pusher
        self.sink = sink
        self.metrics = metrics
        self.topic_types = topic_types
        self.drift = drift
        self.kpis = Kpis(metrics, drift)
        self.batch_log = batch_log
        self.attribution = attribution
        self.retry_delays = retry_delays
        self.lock = asyncio.Lock()  # a batch from its load to its push (see the module docstring)

    async def handle(self, records: list[Record]) -> BatchOutcome:
        started, cpu = time.perf_counter(), time.thread_time()
        out = BatchOutcome()
        with self.engine.stages("validate"):
            valid, rejected = validate_records(records, self.topic_types)
        for rec, reason, detail in rejected:
            await self.reject(rec, reason, detail, out)
        async with self.lock:
            await self._apply(valid, out)
        if self.drift is not None:
            await self.drift.publish(self.sink)
        # one wait for what the batch sent (item updates, lists, dead letters, alerts), then its
        # item updates leave the outbox
        await self.engine.bus.settle(self.sink.flush)
        self.metrics.batch_events.observe(len(records))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_cpu_seconds.inc(time.thread_time() - cpu)
        return out

    async def _apply(self, valid: list, out: BatchOutcome) -> None:
        """The valid events' step(s), KPIs, and the changed users' lists."""
        for valid_part, result in await self._step_isolating(valid, out):
            self.kpis.record(result, [valid_part[j][0] for j in result.order])
            await self._attribute(result)
            self._log_batch([ev for _, ev in valid_part])
            # a list changes with a user's signal or seen items: an impression alone changes neither
            self.pusher.changed(ev.user_id for ev, f in zip(result.events, result.fresh) if f and marks_seen(ev))
            out.applied += result.applied
            out.duplicates += result.duplicates
            out.dropped += result.dropped
            out.trials += len(result.trials)
            out.hits += sum(t.rank is not None for t in result.trials)
            try:
                out.pushed += await self.with_retries("push", lambda r=result: self.pusher.push_due(r.users, r.shared))
            except Exception:  # applied already; the users stay pending and are pushed later
                log.exception("pushing recommendations failed; will retry with the next batch")

    async def _attribute(self, result: StepResult) -> None:
        """Count the batch's events against the lists they name: all but an erased user's (a
        duplicate too: attribution counts each event once by itself, so a batch applied again after
        a crash between the step's commit and this one is counted now, and only once)."""
        if self.attribution is None:
            return
        kept = [ev for ev, gone in zip(result.events, result.erased or [False] * len(result.events)) if not gone]
        try:
            with self.engine.stages("attribute"):
                counted = await self.with_retries("attribute", lambda: self.attribution.attribute(kept))
        except Exception:  # the step is committed; the events' KPIs are lost, never the events
            log.exception("attribution of a batch failed; its events are applied, not attributed")
            return
        counted.observe(self.metrics)

    async def _step_isolating(self, valid: list, out: BatchOutcome) -> list[tuple[list, StepResult]]:
        """The batch in one step; if it fails for a reason other than a transient one, event by
        event, dead-lettering the ones that fail, so one poison event never drops a batch."""
        if not valid:
            return []
        events = [ev for _, ev in valid]
        positions = [(rec.topic, rec.partition, rec.offset) for rec, _ in valid]
        try:
            return [(valid, await self.with_retries("step", lambda: self.engine.step(events, positions)))]
        except Exception as exc:
            log.exception("batch step failed (%s); isolating the failing events", exc)
        done = []
        for rec, ev in valid:
            try:
                done.append(([(rec, ev)], await self.with_retries(
                    "step", lambda rec=rec, ev=ev: self.engine.step([ev], [(rec.topic, rec.partition, rec.offset)]))))
            except Exception as exc:
                await self.reject(rec, "processing_error", f"{type(exc).__name__}: {exc}", out)
        return done

    def _log_batch(self, events) -> None:
        """One line per committed batch: its event ids as they arrived (the engine orders them)."""
        if not self.batch_log:
            return
        with open(self.batch_log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"events": [ev.event_id for ev in events]}, separators=(",", ":")) + "\n")

    async def dead_letter(self, rejected: list[tuple[Record, str, str]]) -> None:
        """Dead-letter these records and wait until Kafka has them (callers retry it until it passes)."""
        for rec, reason, detail in rejected:
            await self.reject(rec, reason, detail)
        await self.sink.flush()

    async def reject(self, rec: Record, reason: str, detail: str, out: BatchOutcome | None = None) -> None:
        """Dead-letter one message: original bytes, reason headers, metric, log line."""
        if out is not None:
            out.invalid += 1
            out.reasons[reason] = out.reasons.get(reason, 0) + 1
        self.metrics.invalid_events_total.labels(reason).inc()
        log.warning("dead-lettered %s[%d]@%d: %s (%s)", rec.topic, rec.partition, rec.offset, reason, detail)
        await self.sink.dead_letter(rec, reason, detail)

    async def with_retries(self, step: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Retry transient store failures until they pass: a batch is never dropped."""
        attempt = 0
        while True:
            try:
                return await fn()
            except TRANSIENT as exc:
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                attempt += 1
                log.warning("step %s failed (%s: %s); retry %d in %.1f s", step, type(exc).__name__, exc, attempt, delay)
                await asyncio.sleep(delay)
