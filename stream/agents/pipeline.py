"""What the ingest agent does to a micro-batch, free of Faust so it can be unit-tested.

    records (raw bytes from the interaction topics)
      -> validate       bad: dead-letter topic, original bytes + reason, processing goes on
      -> load           (with the MF learner) claimed event ids, users' model rows, seen items,
                        profile segments and behaviour: one script call (without it, a segment lookup)
      -> prequential    each click of a user with history: was the item in their top-K, before learning?
                        (with the segment models: the segment re-ranker's and MF's top-K both scored)
      -> learn          (with the MF learner) the users' rows; item gradients to the items' owners;
                        the segment re-rankers and the behaviour clusterer
      -> apply          one Lua script call for the batch: dedupe by event_id, popularity, seen
                        items, counters and, with the learner, the users' new rows, the re-rankers'
                        weight changes, the guards' trials and the behaviour changes, atomically
      -> top-K          for users whose state changed
      -> push           to the recommendations topic when a user's list changed (rate-limited)

Users with a model row are ranked by the MF model, its top candidates re-ranked by their
segment's re-ranker while the segment's guard allows (stream/agents/segment_models.py);
users without one (no signal yet) by their segment's popularity. A user's segment is their
profile's, else their behaviour segment (stream/agents/behaviour_segments.py), else the default.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

import redis.exceptions

from stream.contract import Event, InvalidEvent, validate_event
from stream.drift import DriftAlert, DriftMonitor, KpiDrift, signal_values
from stream.metrics import Metrics
from stream.signals import signal_weight
from stream.store.keys import Keys
from stream.store.popularity import PopularityStore
from stream.store.segment_state import SegmentUpdates
from stream.store.userstate import MODEL_VERSION

__all__ = ["Record", "Publisher", "Ingestor", "BatchResult", "MODEL_NAME", "MF_MODEL_NAME", "RERANK_MODEL_NAME",
           "dlq_headers"]

log = logging.getLogger(__name__)

MODEL_NAME = "segment-popularity-v1"
MF_MODEL_NAME = MODEL_VERSION
#: A list the segment's re-ranker ordered (see stream/agents/segment_models.py).
RERANK_MODEL_NAME = f"{MODEL_VERSION}+segment-rerank-v1"

Ranked = list[tuple[str, float]]

#: Failures worth waiting out: the store is restarting or the network hiccuped.
TRANSIENT = (
    ConnectionError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def _warm(state) -> bool:
    """Whether a user's model row has learned anything (else the user is ranked by popularity)."""
    return state is not None and state.n > 0


@dataclass(frozen=True)
class Record:
    """One Kafka message as the pipeline sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # producer create time, epoch seconds


class Publisher(Protocol):
    async def dead_letter(self, record: Record, reason: str, detail: str) -> None: ...

    async def recommendations(self, user_id: str, payload: bytes) -> None: ...

    async def drift_alert(self, segment: str, payload: bytes) -> None: ...

    async def item_gradients(self, partition: int, payload: bytes) -> None: ...

    async def flush(self) -> None: ...


def dlq_headers(record: Record, reason: str, detail: str) -> list[tuple[str, bytes]]:
    """Dead-letter headers: the machine-readable reason and where the message came from."""
    return [
        ("streamrec.reason", reason.encode()),
        ("streamrec.detail", detail.encode("utf-8", errors="replace")[:1024]),
        ("streamrec.source.topic", record.topic.encode()),
        ("streamrec.source.partition", str(record.partition).encode()),
        ("streamrec.source.offset", str(record.offset).encode()),
        ("streamrec.rejected_at", repr(time.time()).encode()),
    ]


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    invalid: int = 0
    pushed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class Ingestor:
    """Validate, dedupe, apply and push, one micro-batch at a time."""

    def __init__(
        self,
        store: PopularityStore,
        publisher: Publisher,
        metrics: Metrics,
        *,
        topic_types: dict[str, str],
        default_segment: str,
        top_k: int,
        rec_min_interval_seconds: float,
        retry_delays: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0, 5.0),
        clock: Callable[[], float] = time.monotonic,
        max_tracked_users: int = 200_000,
        drift: DriftMonitor | None = None,
        drift_active_seconds: float = 600.0,
        drift_window_seconds: float = 10.0,
        learner=None,
        explore_share: float = 0.0,
        explore_max_positive_weight: float = 5.0,
        segment_models=None,
        behaviour=None,
    ):
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.topic_types = topic_types
        self.default_segment = default_segment
        self.top_k = top_k
        self.rec_min_interval_seconds = rec_min_interval_seconds
        self.retry_delays = retry_delays
        self.clock = clock
        self.max_tracked_users = max_tracked_users
        self._last_push: OrderedDict[str, float] = OrderedDict()
        self._last_lists: dict[str, tuple[str, ...]] = {}  # item ids of the last list pushed per user
        self._pending: dict[str, str] = {}  # user_id -> segment, changed but rate-limited
        self._push_lock = asyncio.Lock()
        self.drift = KpiDrift(drift, drift_window_seconds) if drift is not None else None
        self.drift_active_seconds = drift_active_seconds
        self._drift_active_until: dict[tuple[str, str], float] = {}
        self._pending_alerts: list[DriftAlert] = []
        self.learner = learner  # stream.agents.learner.Learner: the MF model; None: popularity only
        self.explore_share = explore_share
        self.explore_max_positive_weight = explore_max_positive_weight
        # stream.agents.segment_models.SegmentModels: re-rankers and guards; None: MF alone
        self.segment_models = segment_models
        # stream.agents.behaviour_segments.BehaviourSegments: segments of users without a profile one
        self.behaviour = behaviour

    @property
    def keys(self) -> Keys:
        return self.store.keys

    async def handle(self, records: list[Record]) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult()
        valid: list[tuple[Record, Event]] = []
        for rec in records:
            try:
                event_type = self.topic_types.get(rec.topic)
                if event_type is None:
                    raise InvalidEvent("unknown_topic", f"topic {rec.topic!r} carries no known event type")
                if rec.value is None:
                    raise InvalidEvent("not_json", "message has no value (a tombstone): events must be JSON objects")
                event = validate_event(event_type, rec.value)
                if rec.key is not None and rec.key.decode("utf-8", errors="replace") != event.user_id:
                    raise InvalidEvent(
                        "key_mismatch",
                        f"message key {rec.key[:64]!r} differs from user_id {event.user_id!r}: key must be the user_id",
                        "user_id",
                    )
            except InvalidEvent as exc:
                await self.reject(rec, exc.reason, str(exc), result)
                continue
            valid.append((rec, event))

        applied = await self._apply_isolating(valid, result)
        now_wall = time.time()
        for (rec, _), app in zip(valid, applied):
            if not app.fresh:
                result.duplicates += 1
                self.metrics.duplicate_events_total.inc()
                continue
            result.applied += 1
            ev = app.event
            self.metrics.events_total.labels(ev.type, app.segment).inc()
            if ev.type == "dwell":
                self.metrics.dwell_seconds.labels(app.segment).observe(float(ev.seconds or 0.0))
            if rec.timestamp:
                self.metrics.event_to_applied_seconds.observe(max(0.0, now_wall - rec.timestamp))
            self._pending[ev.user_id] = app.segment
            for signal, value in signal_values(ev.type, ev.seconds):
                self._observe(app.segment, signal, value)

        await self.publish_alerts()
        try:
            result.pushed = await self._with_retries("push", self.push_due)
        except Exception:
            # The events are applied already; their users stay pending and are pushed later.
            log.exception("pushing recommendations failed; will retry with the next batch")
        await self.publisher.flush()
        self.metrics.batch_events.observe(len(records))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return result

    async def answer(self, requests: list) -> int:
        """Answer rec-requests (validated :class:`stream.contract.RecRequest`) on the recommendations topic."""
        if not requests:
            return 0
        users = sorted({r.user_id for r in requests})
        segments, tops = await self.recommend(users, max(r.k for r in requests))
        for req in requests:
            ranked, model = tops[req.user_id]
            payload = self.payload(req.user_id, segments[req.user_id], ranked[: req.k], "request", req.request_id, model)
            await self.publisher.recommendations(req.user_id, payload)
            self.metrics.recommendations_pushed_total.labels(segments[req.user_id]).inc()
        await self.publisher.flush()
        return len(requests)

    async def _apply_isolating(self, valid: list[tuple[Record, Event]], result: BatchResult):
        """Apply the batch; if it fails for a reason other than a transient one, apply event by
        event and dead-letter the ones that fail, so one poison event never drops a batch."""
        events = [ev for _, ev in valid]
        try:
            return await self._with_retries("apply", lambda: self._apply(events))
        except Exception as exc:
            log.exception("batch apply failed (%s); isolating the failing events", exc)
        applied = []
        for rec, ev in list(valid):
            try:
                applied += await self._with_retries("apply", lambda: self._apply([ev]))
            except Exception as exc:
                valid.remove((rec, ev))
                await self.reject(rec, "processing_error", f"{type(exc).__name__}: {exc}", result)
        return applied

    async def _apply(self, events: list[Event]):
        users = sorted({ev.user_id for ev in events})
        if self.learner is None:
            segments = await self.store.segments_of(users, self.default_segment)
            await self._prequential_popularity(events, segments)
            return await self.store.apply(events, segments)
        view = await self.learner.load(events, users)
        segments = self._segments(view, users)
        fresh = view.fresh(events)
        seen = {u: set(items) for u, items in view.seen.items()}
        trials = [ev for ev in fresh if ev.type == "click" and seen.get(ev.user_id) and ev.item_id not in seen[ev.user_id]]
        sm, updates, prepared = self.segment_models, None, None
        if sm is not None:
            # the segment models: both rankings of the trials' and positives' users, before learning
            warm = sorted(u for u in {ev.user_id for ev in trials} | {ev.user_id for ev in fresh if signal_weight(ev) > 0}
                          if _warm(view.states.get(u)))
            prepared = await sm.prepare([(u, view.states[u], view.seen.get(u, []), segments[u]) for u in warm],
                                        self.top_k)
            updates = SegmentUpdates()
            position: dict[str, int] = {}
            for n, ev in enumerate(events):
                position.setdefault(ev.event_id, n)
            sm.trials([(position[ev.event_id], ev) for ev in trials], prepared[1], self.top_k, updates)
        await self._prequential(trials, segments,
                                lambda uids: self._rank_loaded(uids, segments, view.states, view.seen, self.top_k,
                                                               explore=False, prepared=prepared))
        step = self.learner.learn(fresh, view)
        if sm is not None:
            sm.learn(fresh, prepared[1], prepared[0], updates)
        bs, moves, clusterer = self.behaviour, None, None
        if bs is not None:
            profiled = {u for u in users if view.segments.get(u) and view.segments[u] != self.default_segment}
            clusterer = await bs.load()
            moves = bs.learn(fresh, view.behaviour, view.states, profiled, clusterer)
        # Gradients go out before the commit: after a crash in between, the redelivered batch
        # sends them again (at least once), rather than never.
        for partition, grads in step.gradients.items():
            await self.publisher.item_gradients(partition, self.learner.encode_gradients(grads))
        if step.gradients:
            await self.publisher.flush()
        applied = await self.store.apply(events, segments, rows=step.states, updates=updates, behaviour=moves)
        if updates is not None:
            sm.report(updates)
        if moves is not None:
            bs.report(moves, clusterer)
        if step.loss is not None:
            self.metrics.model_loss.observe(step.loss)
        self.metrics.model_events_learned_total.inc(step.learned)
        return applied

    async def _prequential_popularity(self, events: list[Event], segments: dict[str, str]) -> None:
        clicks = [ev for ev in events if ev.type == "click"]
        if not clicks:
            return
        applied_before, seen_counts, seen_before = await self.store.probe(clicks)
        trials = [ev for ev, dup, again in zip(clicks, applied_before, seen_before)
                  if not dup and not again and seen_counts.get(ev.user_id, 0) > 0]

        async def rank(uids):
            tops = await self.store.top_k(uids, segments, self.top_k)
            return {u: (tops[u], MODEL_NAME) for u in uids}

        await self._prequential(trials, segments, rank)

    async def _prequential(self, trials: list[Event], segments: dict[str, str],
                           rank: Callable[[list[str]], Awaitable[dict[str, tuple[Ranked, str]]]]) -> None:
        """The online hit rate, as in the offline protocol (docs/EVALUATION.md): each first-seen
        click of a user who has history, on an item new to them, is a trial; a hit when the item
        is in the user's top-K as it stood before this batch was learned."""
        if not trials:
            return
        tops = await rank(sorted({ev.user_id for ev in trials}))
        for ev in trials:
            seg = segments[ev.user_id]
            ranked = [e[0] for e in tops[ev.user_id][0]]
            self.metrics.prequential_trials_total.labels(seg).inc()
            self._observe(seg, "hit_rate", 1.0 if ev.item_id in ranked else 0.0)
            if ev.item_id in ranked:
                rank_ = ranked.index(ev.item_id) + 1
                self.metrics.prequential_hits_total.labels(seg).inc()
                self.metrics.prequential_ndcg_sum.labels(seg).inc(1.0 / math.log2(rank_ + 1))

    def _segments(self, view, user_ids: list[str]) -> dict[str, str]:
        """Each user's segment at the batch's start: the profile's, else the behaviour segment,
        else the default."""
        out = {}
        for uid in user_ids:
            segment = view.segments.get(uid)
            if not segment or segment == self.default_segment:
                segment = (self.behaviour.segment_of(view.behaviour.get(uid)) if self.behaviour is not None
                           else None) or self.default_segment
            out[uid] = segment
        return out

    async def recommend(self, user_ids: list[str], k: int) -> tuple[dict[str, str], dict[str, tuple[Ranked, str]]]:
        """Each user's segment, and current top-k with the model that ranked it."""
        if self.learner is None:
            segments = await self.store.segments_of(user_ids, self.default_segment)
            return segments, await self.rank_users(user_ids, segments, k)
        view = await self.learner.load([], user_ids)
        segments = self._segments(view, user_ids)
        return segments, await self._rank_loaded(user_ids, segments, view.states, view.seen, k)

    async def rank_users(self, user_ids: list[str], segments: dict[str, str], k: int) -> dict[str, tuple[Ranked, str]]:
        """Each user's current top-k and the model that ranked it (MF when the user has a row)."""
        if self.learner is None:
            tops = await self.store.top_k(user_ids, segments, k)
            return {u: (tops[u], MODEL_NAME) for u in user_ids}
        view = await self.learner.load([], user_ids)
        return await self._rank_loaded(user_ids, segments, view.states, view.seen, k)

    def _explores(self, user_id: str, now: float) -> bool:
        """Whether this user's list explores now: a stable draw per user and minute, so a share
        ``explore_share`` of lists carries one fresh item and a list does not flicker."""
        if self.explore_share <= 0:
            return False
        return zlib.crc32(f"{user_id}:{int(now // 60)}".encode()) % 10_000 < self.explore_share * 10_000

    async def _rank_loaded(self, user_ids: list[str], segments: dict[str, str], states: dict, seen: dict[str, list[str]],
                           k: int, explore: bool = True, prepared=None) -> dict[str, tuple[Ranked, str]]:
        """Rank users whose rows are loaded: the segment models (or MF alone, without them) for
        users with a row, segment popularity for the rest; with ``explore``, the lists chosen by
        :meth:`_explores` carry one fresh item. ``prepared``: the segment models' view and
        candidates, computed already."""
        out: dict[str, tuple[Ranked, str]] = {}
        warm = [uid for uid in user_ids if _warm(states.get(uid))]
        cold = [uid for uid in user_ids if not _warm(states.get(uid))]
        sm = self.segment_models
        seg_view, cands = prepared if prepared is not None else (None, {})
        if sm is not None and warm and prepared is None:
            seg_view, cands = await sm.prepare([(u, states[u], seen.get(u, []), segments.get(u, self.default_segment))
                                                for u in warm], k)
        now = time.time()
        mf = self.learner.mf
        for uid in warm:
            state = states[uid]
            explores = explore and self._explores(uid, now)
            c = cands.get(uid)
            if c is not None:
                ranked, by_segment = sm.served(c, seg_view, k)
                model = RERANK_MODEL_NAME if by_segment else MF_MODEL_NAME
                if explores and len(ranked) == k:
                    alt = mf.rank(state, k, seen.get(uid, []), explore=True,
                                  explore_max_pop=self.explore_max_positive_weight)
                    if alt and len(alt[-1]) > 2 and alt[-1][0] not in {e[0] for e in ranked}:
                        ranked = ranked[:-1] + [alt[-1]]
            else:
                ranked = mf.rank(state, k, seen.get(uid, []), explore=explores,
                                 explore_max_pop=self.explore_max_positive_weight)
                model = MF_MODEL_NAME
            if explores and ranked and len(ranked[-1]) > 2:
                self.metrics.explored_total.labels(segments.get(uid, self.default_segment)).inc()
            out[uid] = (ranked, model)
            self.metrics.embedding_age_seconds.labels("user").observe(max(0.0, now - state.updated_at))
        if cold:
            tops = await self.store.top_k(cold, segments, k)
            out.update({u: (tops[u], MODEL_NAME) for u in cold})
        return out

    async def dead_letter(self, rejected: list[tuple[Record, InvalidEvent]]) -> None:
        """Dead-letter these records and wait until Kafka has them (callers retry it until it passes)."""
        for rec, exc in rejected:
            await self.reject(rec, exc.reason, str(exc))
        await self.publisher.flush()

    async def reject(self, rec: Record, reason: str, detail: str, result: BatchResult | None = None) -> None:
        """Dead-letter one message: original bytes, reason headers, metric, log line."""
        if result is not None:
            result.invalid += 1
            result.reasons[reason] = result.reasons.get(reason, 0) + 1
        self.metrics.invalid_events_total.labels(reason).inc()
        log.warning("dead-lettered %s[%d]@%d: %s (%s)", rec.topic, rec.partition, rec.offset, reason, detail)
        await self.publisher.dead_letter(rec, reason, detail)

    def _observe(self, segment: str, signal: str, value: float) -> None:
        if self.drift is None:
            return
        key = (segment, signal)
        if key not in self._drift_active_until:
            self._drift_active_until[key] = 0.0
            self.metrics.drift_active.labels(segment, signal).set(0)  # the series exists before any alert
        for alert in self.drift.observe(segment, signal, value, now=self.clock()):
            self._raise(alert)

    def _raise(self, alert: DriftAlert) -> None:
        segment, signal = alert.segment, alert.signal
        self._pending_alerts.append(alert)
        self._drift_active_until[(segment, signal)] = self.clock() + self.drift_active_seconds
        self.metrics.drift_alerts_total.labels(segment, signal, alert.detector).inc()
        self.metrics.drift_active.labels(segment, signal).set(1)
        log.warning("drift: segment %s, %s moved from %.4f to %.4f (%s)", segment, signal,
                    alert.value_before, alert.value_after, alert.detector)

    async def publish_alerts(self) -> int:
        """Close due KPI windows, send pending drift alerts to alerts.drift, clear the active
        gauge of old ones."""
        now = self.clock()
        if self.drift is not None:
            for alert in self.drift.close_due(now):
                self._raise(alert)
        for (segment, signal), until in self._drift_active_until.items():
            if 0.0 < until <= now:
                self._drift_active_until[(segment, signal)] = 0.0
                self.metrics.drift_active.labels(segment, signal).set(0)
        sent = 0
        while self._pending_alerts:
            alert = self._pending_alerts[0]
            await self.publisher.drift_alert(alert.segment, json.dumps(alert.to_message()).encode())
            self._pending_alerts.pop(0)
            sent += 1
        return sent

    async def push_due(self) -> int:
        """Push the lists of changed users whose rate limit allows it; the rest wait."""
        async with self._push_lock:
            now = self.clock()
            due = {
                uid: seg
                for uid, seg in self._pending.items()
                if now - self._last_push.get(uid, float("-inf")) >= self.rec_min_interval_seconds
            }
            if not due:
                return 0
            # Taken out before the await: a change that arrives meanwhile stays pending.
            for uid in due:
                del self._pending[uid]
            try:
                return await self.push(due, trigger="event")
            except BaseException:
                for uid, seg in due.items():
                    self._pending.setdefault(uid, seg)
                raise

    async def push(self, users: dict[str, str], *, trigger: str) -> int:
        """Send each user's list to the recommendations topic (and ``{p}:user:{id}:recs``); with
        ``trigger="event"`` only lists that differ from the last one pushed."""
        user_ids = sorted(users)
        tops = await self.rank_users(user_ids, users, self.top_k)
        redis = self.store.redis
        # The last lists pushed are remembered here; Redis is asked only for users this
        # process has not pushed to (after a restart, or when they were evicted).
        unknown = [uid for uid in user_ids if uid not in self._last_lists] if trigger == "event" else []
        if unknown:
            pipe = redis.pipeline(transaction=False)
            for uid in unknown:
                pipe.get(self.keys.recs(uid))
            for uid, prev in zip(unknown, await pipe.execute()):
                if prev is not None:
                    self._last_lists[uid] = tuple(x["item_id"] for x in json.loads(prev)["items"])
        now = self.clock()
        pushed = 0
        pipe = redis.pipeline(transaction=False)
        for uid in user_ids:
            ranked, model = tops[uid]
            items = tuple(e[0] for e in ranked)
            if trigger == "event" and self._last_lists.get(uid) == items:
                continue
            payload = self.payload(uid, users[uid], ranked, trigger, model=model)
            pipe.set(self.keys.recs(uid), payload)
            await self.publisher.recommendations(uid, payload)
            self.metrics.recommendations_pushed_total.labels(users[uid]).inc()
            self._last_push[uid] = now
            self._last_push.move_to_end(uid)
            self._last_lists[uid] = items
            pushed += 1
        while len(self._last_push) > self.max_tracked_users:
            uid, _ = self._last_push.popitem(last=False)
            self._last_lists.pop(uid, None)
        await pipe.execute()
        return pushed

    @staticmethod
    def payload(user_id: str, segment: str, ranked: list[tuple[str, float]], trigger: str,
                request_id: str | None = None, model: str = MODEL_NAME) -> bytes:
        body: dict[str, Any] = {
            "schema": "v1",
            "user_id": user_id,
            "rec_id": uuid.uuid4().hex,
            "segment": segment,
            "model": model,
            "trigger": trigger,
            "generated_at": time.time(),
            "items": [{"item_id": e[0], "score": round(e[1], 6), "rank": r + 1, **({"reason": e[2]} if len(e) > 2 else {})}
                      for r, e in enumerate(ranked)],
        }
        if request_id is not None:
            body["request_id"] = request_id
        return json.dumps(body, separators=(",", ":")).encode()

    async def _with_retries(self, step: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Retry transient store failures until they pass: a batch is never dropped.

        Retrying is safe because every effect is idempotent (dedupe by event_id).
        """
        attempt = 0
        while True:
            try:
                return await fn()
            except TRANSIENT as exc:
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                attempt += 1
                log.warning("step %s failed (%s: %s); retry %d in %.1f s", step, type(exc).__name__, exc, attempt, delay)
                await asyncio.sleep(delay)
