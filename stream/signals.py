"""From events to implicit-feedback signal: how much an event says the user liked the item.

    click        +1
    dwell        +min(seconds / 60, 3) * 0.5     (grows with dwell time, capped at +1.5)
    skip         -0.5 (-0.25 when the user skipped after more than 30 s)
    impression    0 for the popularity baseline (a weak negative for the MF model)

>>> from stream.contract import validate_event
>>> signal_weight(validate_event("dwell", {"event_id": "e", "user_id": "u", "item_id": "i", "ts": 0, "schema": "v1", "seconds": 120}))
1.0
"""

from __future__ import annotations

from stream.contract import Event

__all__ = ["signal_weight", "marks_seen"]

DWELL_UNIT_SECONDS = 60.0
DWELL_CAP_UNITS = 3.0


def signal_weight(event: Event) -> float:
    if event.type == "click":
        return 1.0
    if event.type == "dwell":
        return 0.5 * min(float(event.seconds or 0.0) / DWELL_UNIT_SECONDS, DWELL_CAP_UNITS)
    if event.type == "skip":
        return -0.25 if float(event.after_seconds or 0.0) > 30.0 else -0.5
    return 0.0


def marks_seen(event: Event) -> bool:
    """Clicked, dwelt on or skipped items are not recommended again to that user."""
    return event.type in ("click", "dwell", "skip")
