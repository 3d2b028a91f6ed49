"""Pushing lists: to the recommendations topic when a user's list changed, and in answer to requests.

A user whose state a batch changed becomes *pending*; :meth:`Pusher.push_due` ranks the
pending users whose rate limit allows (at most one push per ``min_interval`` seconds per user)
and sends the lists that differ from the last one pushed. Users the batch just changed are
ranked from the batch's own records (no second load); users left pending by the rate limit are
loaded when their turn comes. The last lists pushed are remembered here; the state is asked
only for users this process has not pushed to.

A list message (topic and HTTP)::

    {"schema": "v1", "user_id", "rec_id", "segment", "model", "experiment", "variant" (null outside
     experiments), "trigger": "event|request", "generated_at", "request_id" (answers to rec-requests only),
     "items": [{"item_id", "score", "rank", "reason": {"kind": ..., ...}}]}
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import msgspec
import numpy as np
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Protocol

from stream.engine.coverage import CoverageWindow
from stream.engine.engine import Engine
from stream.engine.rank import Ranked
from stream.models.diversity import flat_diversity, flat_rows
from stream.state.base import SharedState, UserRecord

__all__ = ["Pusher", "message", "ListSink", "ListLog"]

_encode = msgspec.json.Encoder().encode


class ListSink(Protocol):
    async def recommendations(self, user_id: str, payload: bytes) -> None: ...


class ListLog(Protocol):
    """Keeps served lists for attribution (:class:`stream.experiments.attribution.Attribution`)."""

    async def record(self, messages: list[dict[str, Any]]) -> None: ...


def message(user_id: str, segment: str, ranked: Ranked, trigger: str, request_id: str | None = None,
            k: int | None = None) -> dict[str, Any]:
    """A list message (see the module docstring) of the first ``k`` items (all by default)."""
    items = ranked.items if k is None else ranked.items[:k]
    reasons = ranked.reasons or []
    entries = [{"item_id": i, "score": round(s, 6), "rank": r} for r, (i, s) in enumerate(items, 1)]
    for entry, why in zip(entries, reasons):
        entry["reason"] = why
    body: dict[str, Any] = {
        "schema": "v1", "user_id": user_id, "rec_id": uuid.uuid4().hex, "segment": segment, "model": ranked.model,
        "experiment": ranked.experiment, "variant": ranked.variant, "trigger": trigger, "generated_at": time.time(),
        "items": entries,
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


class Pusher:
    """Sends users' lists (see the module docstring).

    Parameters
    ----------
    engine
        Ranks the users.
    sink
        Where lists go (the worker's publisher: the recommendations topic).
    metrics
        :class:`stream.metrics.Metrics` (pushes counted per segment, explored lists, the lists'
        diversity per segment and variant, the catalogue coverage of what was sent).
    top_k, min_interval
        List length; at most one push per user per ``min_interval`` seconds.
    coverage_window
        Seconds of sent lists the coverage gauge counts.
    lists
        Where served lists are recorded before they go out, so that the events naming them can
        be attributed (None: not recorded).
    """

    def __init__(self, engine: Engine, sink: ListSink, metrics, *, top_k: int, min_interval: float,
                 clock: Callable[[], float] = time.monotonic, max_tracked_users: int = 200_000,
                 lists: ListLog | None = None, coverage_window: float = 3600.0) -> None:
        self.engine = engine
        self.lists = lists
        self.sink = sink
        self.metrics = metrics
        self.top_k = top_k
        self.min_interval = min_interval
        self.clock = clock
        self.max_tracked_users = max_tracked_users
        self._pending: dict[str, None] = {}
        self._last_push: OrderedDict[str, float] = OrderedDict()
        self._last_lists: dict[str, tuple[str, ...]] = {}
        self._lock = asyncio.Lock()
        self._coverage = CoverageWindow(coverage_window)

    @classmethod
    def from_settings(cls, engine: Engine, sink: ListSink, metrics, settings, lists: ListLog | None = None) -> "Pusher":
        """With the list length, the rate limit and the coverage window of the settings
        (STREAMREC_TOP_K, STREAMREC_REC_MIN_INTERVAL_SECONDS, STREAMREC_COVERAGE_WINDOW_SECONDS)."""
        return cls(engine, sink, metrics, top_k=settings.top_k, min_interval=settings.rec_min_interval_seconds,
                   lists=lists, coverage_window=settings.coverage_window_seconds)

    def changed(self, user_ids) -> None:
        """These users' state changed: their list is due for a look."""
        for uid in user_ids:
            self._pending[uid] = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def forgetting(self, user_ids: list[str], action: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``action()`` while no list is being pushed, then forget ``user_ids``: not pending,
        no last push time, no last list (an erasure: nothing of theirs stays in this process).
        Returns what ``action`` returns."""
        async with self._lock:
            out = await action()
            for uid in user_ids:
                self._pending.pop(uid, None)
                self._last_push.pop(uid, None)
                self._last_lists.pop(uid, None)
            return out

    async def push_due(self, records: dict[str, UserRecord] | None = None, shared: SharedState | None = None) -> int:
        """Push the lists of pending users whose rate limit allows; the rest stay pending.
        ``records`` / ``shared``: a batch's users after it and its shared state (else loaded)."""
        async with self._lock:
            now = self.clock()
            due = [uid for uid in self._pending if now - self._last_push.get(uid, float("-inf")) >= self.min_interval]
            if not due:
                return 0
            for uid in due:  # taken out before the await: a change meanwhile stays pending
                del self._pending[uid]
            try:
                with self.engine.stages("push"):
                    return await self._push(sorted(due), records or {}, shared)
            except BaseException:
                for uid in due:
                    self._pending.setdefault(uid, None)
                raise

    async def _push(self, user_ids: list[str], records: dict[str, UserRecord], shared: SharedState | None) -> int:
        known = {uid: records[uid] for uid in user_ids if uid in records}
        missing = [uid for uid in user_ids if uid not in records]
        if missing:
            known.update(await self.engine.state.users(missing))
            shared = None  # some users were loaded now: their segments' state too
        ranked = await self.engine.rank_records(known, self.top_k, shared)
        wall = time.time()
        observe_age = self.metrics.embedding_age_seconds.labels("user").observe
        for rec in known.values():  # how old the user rows are that lists are made from
            if rec.row is not None and rec.row.updated_at:
                observe_age(max(0.0, wall - rec.row.updated_at))
        unknown = [uid for uid in user_ids if uid not in self._last_lists]
        if unknown:
            for uid, prev in (await self.engine.state.last_lists(unknown)).items():
                if prev is not None:
                    self._last_lists[uid] = tuple(x["item_id"] for x in json.loads(prev)["items"])
        now = self.clock()
        saved: dict[str, bytes] = {}
        bodies = {}
        new_lists = {}
        for uid in user_ids:
            segment, r = ranked[uid]
            ids = tuple(r.ids)
            if self._last_lists.get(uid) != ids:
                bodies[uid] = message(uid, segment, r, "event")
                new_lists[uid] = ids
        await self.record(list(bodies.values()))
        pushed: dict[str, list[int]] = {}  # segment -> [lists sent, explored ones]: one increment each
        try:
            for uid, msg in bodies.items():
                segment, r = ranked[uid]
                body = _encode(msg)
                await self.sink.recommendations(uid, body)
                saved[uid] = body
                counts = pushed.setdefault(segment, [0, 0])
                counts[0] += 1
                counts[1] += bool(r.explored)
                self._last_push[uid] = now
                self._last_push.move_to_end(uid)
                self._last_lists[uid] = new_lists[uid]
        finally:  # what was sent counts, even when a later send fails
            for segment, (n, explored) in pushed.items():
                self.metrics.recommendations_pushed_total.labels(segment).inc(n)
                if explored:
                    self.metrics.explored_total.labels(segment).inc(explored)
        self._measure(list(bodies.values()), now, list(new_lists.values()))
        while len(self._last_push) > self.max_tracked_users:
            uid, _ = self._last_push.popitem(last=False)
            self._last_lists.pop(uid, None)
        await self.engine.state.save_lists(saved)
        return len(saved)

    async def answer(self, requests: list) -> int:
        """Answer rec-requests (:class:`stream.contract.RecRequest`) on the recommendations topic."""
        if not requests:
            return 0
        ranked = await self.engine.recommend(sorted({r.user_id for r in requests}), max(r.k for r in requests))
        bodies = [message(req.user_id, ranked[req.user_id][0], ranked[req.user_id][1], "request", req.request_id, k=req.k)
                  for req in requests]
        await self.record(bodies)
        for req, body in zip(requests, bodies):
            await self.sink.recommendations(req.user_id, _encode(body))
            self.metrics.recommendations_pushed_total.labels(body["segment"]).inc()
        self._measure(bodies, self.clock(), [[x["item_id"] for x in b["items"]] for b in bodies])
        return len(requests)

    async def record(self, messages: list[dict[str, Any]]) -> None:
        """Record served lists for attribution (before they go out: an event naming one cannot
        arrive before its record)."""
        if self.lists is not None and messages:
            await self.lists.record(messages)

    def _measure(self, messages: list[dict[str, Any]], now: float, lists: list) -> None:
        """The diversity of lists just sent (their messages, and their item ids), all at once,
        and the coverage."""
        if not messages:
            return
        table = self.engine.table
        rows, lengths = flat_rows(table, lists)
        for m, ild in zip(messages, flat_diversity(table.mf.model.item_factors, rows, lengths).tolist()):
            if ild == ild:  # NaN: fewer than two items
                self.metrics.list_diversity.labels(m["segment"], m.get("experiment") or "none",
                                                   m.get("variant") or "none").observe(ild)
        self._coverage.add(rows, now)
        named = table.named()
        servable = named if named is not None else np.ones(table.n_items, dtype=bool)
        self.metrics.pushed_coverage_ratio.set(self._coverage.ratio(now, servable))
