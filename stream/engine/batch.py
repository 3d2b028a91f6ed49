"""A micro-batch as the engine sees it, and the one in-order walk over its events.

The walk goes through the batch's fresh events in order and keeps each user's history up to
date event by event, so that a user's second click in a batch is ranked knowing their first:

* before an event that is a trial (:func:`stream.signals.is_trial`), the user's state *as of
  that moment* is kept as a :class:`Moment` (what ranking needs: history, seen items, segment):
  the trial is scored on it, and the re-rankers learn from it;
* then the event changes the user: events counted, the item marked seen, and a positive on
  an item new to the user's co-occurrence history forms its pairs with that history
  (:func:`stream.models.cooccurrence.pair_run`) and joins it.

What the walk does not change within a batch: the users' MF rows (learned per batch, from all
its events at once), the item side and the segments' shared state (changed when the batch
commits). Offline evaluation replays the same boundaries, so it sees the same.

Before the walk, :func:`triage` says which events are applied now: not those applied before (a
redelivery, a resend), and not those of an erased user at or before their erasure (counted,
never applied: the user stays erased; a later event starts a new user).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from stream.contract import Event
from stream.engine.config import EngineConfig
from stream.models.cooccurrence import pair_run, remember
from stream.signals import is_trial, marks_seen, signal_weight
from stream.state.base import UserRecord
from stream.state.seen import Seen

__all__ = ["Moment", "Batch", "walk", "explores", "triage"]


def explores(user_id: str, ts: float, share: float) -> bool:
    """Whether a user's list explores at time ``ts``: a stable draw per user and minute, so a
    share ``share`` of lists carries one fresh item and a list does not flicker.

    >>> sum(explores(f"u{n}", 0.0, 0.1) for n in range(1000))
    97
    """
    if share <= 0:
        return False
    return zlib.crc32(f"{user_id}:{int(ts // 60)}".encode()) % 10_000 < share * 10_000


@dataclass
class Moment:
    """A user as of just before one of their events in the batch."""

    position: int  # of the event in the batch
    event: Event
    trial: bool  # a prequential trial (every moment is one)
    segment: str
    history: list[str]  # recent positives then, oldest first
    seen: Seen  # items then not to recommend
    explore: bool


@dataclass
class Batch:
    """A micro-batch after the walk."""

    events: list[Event]
    fresh: list[bool]  # per event: not applied before, and the first of its id in the batch
    before: dict[str, UserRecord]  # the users as loaded
    after: dict[str, UserRecord]  # the users after the batch's events (MF rows: still as loaded)
    segments: dict[str, str]  # each user's segment at the batch's start
    moments: list[Moment] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # per event: its signal weight (0 for one not fresh)
    new_positives: list[str] = field(default_factory=list)  # co-occurrence counts: one per new positive
    pair_runs: list[tuple[list[str], list[float] | None]] = field(default_factory=list)  # per new positive: its
    # earlier positives and their pair weights (None: 1 each)
    dropped: int = 0  # events of erased users, at or before their erasure (not fresh, not duplicates)

    @property
    def trials(self) -> list[Moment]:
        return [m for m in self.moments if m.trial]

    @property
    def pairs(self) -> list[tuple[str, str, float]]:
        """Every (new positive, earlier positive, weight) pair (spelled out: tests, tools)."""
        return [(item, past, 1.0 if ws is None else ws[j]) for item, (pasts, ws) in zip(self.new_positives,
                self.pair_runs) for j, past in enumerate(pasts)]

    def fresh_events(self) -> list[Event]:
        return [ev for ev, f in zip(self.events, self.fresh) if f]

    def fresh_weighted(self) -> list[tuple[Event, float]]:
        """The fresh events with their signal weights."""
        return [(ev, w) for ev, f, w in zip(self.events, self.fresh, self.weights) if f]


def triage(events: list[Event], claimed: list[bool], users: dict[str, UserRecord],
           positions: list[tuple[str, int, int]] | None = None,
           marks: dict[tuple[str, int], int | None] | None = None) -> tuple[list[bool], list[bool]]:
    """(fresh, erased) per event: fresh ones are applied now; an event is not fresh when its id
    was ``claimed`` (applied within the dedupe window) or came earlier in the batch, when its
    offset is at or below its partition's last applied one (``positions``, ``marks``: a
    redelivery), or, *erased*, when its user's erasure marker (:attr:`UserRecord.erased_at`) is at
    or after its ts.

    >>> from stream.contract import validate_event
    >>> ev = lambda i, ts: validate_event("click", {"event_id": i, "user_id": "u", "item_id": "x", "ts": ts,
    ...                                            "schema": "v1"})
    >>> triage([ev("a", 1.0), ev("a", 1.0), ev("b", 5.0), ev("c", 9.0)], [False] * 4,
    ...        {"u": UserRecord("u", erased_at=5.0)})
    ([False, False, False, True], [True, False, True, False])
    """
    fresh, erased, first = [], [], set()
    marks = marks or {}
    for n, (ev, done) in enumerate(zip(events, claimed)):
        if positions is not None:
            t, p, offset = positions[n]
            mark = marks.get((t, p))
            done = done or (mark is not None and offset <= mark)
        done = done or ev.event_id in first
        first.add(ev.event_id)
        at = users[ev.user_id].erased_at
        gone = not done and at is not None and ev.ts <= at
        fresh.append(not done and not gone)
        erased.append(gone)
    return fresh, erased


def walk(events: list[Event], fresh: list[bool], users: dict[str, UserRecord], segments: dict[str, str],
         config: EngineConfig) -> Batch:
    """The in-order walk (see the module docstring); ``users`` are not changed (copies are)."""
    cooc = config.hybrid.cooc
    after = {uid: rec.fork() for uid, rec in users.items()}
    batch = Batch(events, fresh, users, after, segments)
    for n, (ev, is_fresh) in enumerate(zip(events, fresh)):
        if not is_fresh:
            batch.weights.append(0.0)
            continue
        rec = after[ev.user_id]
        w = signal_weight(ev)
        batch.weights.append(w)
        if is_trial(ev, rec.events, rec.seen, config.trial_share):
            batch.moments.append(Moment(n, ev, True, segments[ev.user_id], list(rec.history), rec.seen.copy(),
                                        explores(ev.user_id, ev.ts, config.explore_share)))
        rec.events += 1
        if marks_seen(ev):
            rec.seen.add(ev.item_id, ev.ts)
        if w > 0:
            run = pair_run(rec.history, ev.item_id, cooc)
            if run is not None:
                batch.new_positives.append(ev.item_id)
                batch.pair_runs.append(run)
                remember(rec.history, ev.item_id, cooc)
    return batch
