"""From events to implicit-feedback signal, and which events are prequential trials: one rule.

Every consumer of events uses these functions, offline and in the worker alike: the engine
(learning, trials), the evaluation's baselines, and the worker's KPIs.

    click        +1
    dwell        +min(seconds / 60, 3) * 0.5     (grows with dwell time, capped at +1.5)
    skip         -0.5 (-0.25 when the user skipped after more than 30 s)
    purchase     +2
    impression    0 (it teaches nothing and does not mark the item seen)

A purchase (a conversion) is the strongest evidence of liking there is: it weighs more than a
click and than the longest dwell. Its weight does not grow with its ``value``: values in
different currencies do not compare, and a weight that grew with the price would teach the
model to push expensive items rather than liked ones.

A **trial** is a click of a user who has at least one earlier event (of any type), on an item
new to them (not among their seen items): before learning it, was the item in the list the
user would have been served? A purchase is not a trial (it mostly follows a click, which
was one): trials stay clicks, so served-recall figures compare with those measured before
purchases existed.

Each trial costs a ranking of the whole catalogue, so a deployment may score only a **share**
of them (STREAMREC_TRIAL_SHARE): a trial is scored when a stable hash of its event id falls in
that share (:func:`scored`). The draw does not look at the user, the item or the time, so the
scored trials are a uniform sample (hit rates stay unbiased), and it is the same draw wherever
the rule runs: the worker, its replay after a crash, and the offline protocol score the same trials.

A micro-batch is applied in **event-time order** (:func:`event_order`): events of one user
arrive on different topics (clicks, dwell, ...), whose partitions the consumer reads in no
fixed order, so a dwell can arrive before the click it follows. Ties keep the order of
arrival, except that an impression comes before a click and a click before a dwell, skip or
purchase (what is shown is clicked, and a dwell, skip or purchase reports what followed a click).

>>> from stream.contract import validate_event
>>> dwell = validate_event("dwell", {"event_id": "e", "user_id": "u", "item_id": "i", "ts": 0, "schema": "v1",
...                                  "seconds": 120})
>>> signal_weight(dwell), marks_seen(dwell)
(1.0, True)
>>> click = validate_event("click", {"event_id": "c", "user_id": "u", "item_id": "j", "ts": 1, "schema": "v1"})
>>> is_trial(click, 1, {"i": 0.0}), is_trial(click, 0, {}), is_trial(click, 1, {"j": 0.0})
(True, False, False)
"""

from __future__ import annotations

import zlib
from typing import Container

from stream.contract import Event

__all__ = ["signal_weight", "marks_seen", "is_trial", "scored", "event_order"]

DWELL_UNIT_SECONDS = 60.0
DWELL_CAP_UNITS = 3.0
PURCHASE_WEIGHT = 2.0


def signal_weight(event: Event) -> float:
    """How much the event says the user liked the item: > 0 positive, < 0 negative, 0 nothing."""
    if event.type == "click":
        return 1.0
    if event.type == "dwell":
        return 0.5 * min(float(event.seconds or 0.0) / DWELL_UNIT_SECONDS, DWELL_CAP_UNITS)
    if event.type == "skip":
        return -0.25 if float(event.after_seconds or 0.0) > 30.0 else -0.5
    if event.type == "purchase":
        return PURCHASE_WEIGHT
    return 0.0


_SEEN = frozenset(("click", "dwell", "skip", "purchase"))


def marks_seen(event: Event) -> bool:
    """Clicked, dwelt on, skipped or bought items are not recommended again to that user."""
    return event.type in _SEEN


def is_trial(event: Event, earlier_events: int, seen: Container[str], share: float = 1.0) -> bool:
    """Whether an event is a prequential trial, given the user's state just before it, and is
    scored under a trial share of ``share`` (:func:`scored`)."""
    return event.type == "click" and earlier_events > 0 and event.item_id not in seen and scored(event.event_id, share)


def scored(event_id: str, share: float) -> bool:
    """Whether a trial with this event id is scored when a share ``share`` of trials is: a stable
    draw from the id alone (salted, so that it is not the draw of :func:`stream.engine.batch.explores`).

    >>> scored("e1", 1.0), sum(scored(f"e{n}", 0.25) for n in range(10_000))
    (True, 2520)
    """
    return share >= 1.0 or zlib.crc32(b"trial:" + event_id.encode("utf-8")) % 10_000 < share * 10_000


_RANK = {"impression": 0, "click": 1, "dwell": 2, "skip": 2, "purchase": 2}


def event_order(events) -> list[int]:
    """Positions of ``events`` in event-time order (ties: see the module docstring).

    >>> from stream.contract import validate_event
    >>> ev = lambda t, ts: validate_event(t, {"event_id": t, "user_id": "u", "item_id": "i", "ts": ts, "schema": "v1",
    ...                                       "seconds": 1, "after_seconds": 1})
    >>> event_order([ev("dwell", 5.0), ev("click", 5.0), ev("skip", 1.0)])
    [2, 1, 0]
    """
    return sorted(range(len(events)), key=lambda j: (events[j].ts, _RANK.get(events[j].type, 1), j))
