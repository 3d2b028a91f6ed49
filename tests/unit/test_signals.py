"""The one rule from events to signal (stream/signals.py): purchases beside the older types."""

from __future__ import annotations

from stream.contract import INTERACTION_TYPES, validate_event
from stream.signals import event_order, is_trial, marks_seen, signal_weight

EXTRA = {"click": {}, "dwell": {"seconds": 600}, "skip": {"after_seconds": 5}, "impression": {"items": ["i"], "rec_id": "r"},
         "purchase": {"value": 3, "currency": "EUR"}}


def ev(kind, ts=0.0, item="i", **extra):
    return validate_event(kind, {"event_id": f"{kind}{ts}", "user_id": "u", "item_id": item, "ts": ts, "schema": "v1",
                                 **EXTRA[kind], **extra})


def test_every_interaction_type_has_a_rule():
    assert set(EXTRA) == set(INTERACTION_TYPES)


def test_a_purchase_outweighs_a_click_and_the_longest_dwell_whatever_its_value():
    purchase = ev("purchase")
    assert signal_weight(purchase) == 2.0
    assert signal_weight(purchase) > signal_weight(ev("dwell", seconds=86400)) > signal_weight(ev("click")) > 0
    assert signal_weight(ev("purchase", value=1e9, currency="JPY")) == 2.0
    no_value = validate_event("purchase", {"event_id": "p", "user_id": "u", "item_id": "i", "ts": 0, "schema": "v1"})
    assert signal_weight(no_value) == 2.0


def test_a_purchase_marks_its_item_seen_but_is_no_trial():
    assert marks_seen(ev("purchase"))
    assert not marks_seen(ev("impression"))
    assert not is_trial(ev("purchase"), 5, {})
    assert is_trial(ev("click"), 5, {})


def test_a_purchase_comes_after_the_click_at_the_same_time():
    events = [ev("purchase", 5.0), ev("click", 5.0), ev("impression", 5.0), ev("dwell", 4.0)]
    assert event_order(events) == [3, 2, 1, 0]
