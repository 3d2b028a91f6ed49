"""Event contract v1: every rule, with the reason and the field it names."""

from __future__ import annotations

import json

import pytest

from stream.contract import MAX_MESSAGE_BYTES, InvalidEvent, Reason, encode, make_event, validate_event

BASE = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1700000000.5, "schema": "v1"}


def _raw(**changes):
    obj = {**BASE, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "event_type, extra",
    [
        ("click", {}),
        ("dwell", {"seconds": 0}),
        ("dwell", {"seconds": 86400}),
        ("skip", {"after_seconds": 3.5}),
        ("impression", {"items": ["a", "b"], "rec_id": "r1"}),
        ("user", {"attributes": {"plan": "pro"}, "item_id": ...}),
        ("item", {"categories": ["news"], "created_at": 0, "user_id": ...}),
    ],
)
def test_valid_events_pass(event_type, extra):
    ev = validate_event(event_type, _raw(**extra))
    assert ev.type == event_type and ev.event_id == "e1"


@pytest.mark.parametrize(
    "event_type, raw, reason, field",
    [
        ("click", b"\xff\x00", Reason.NOT_UTF8, None),
        ("click", b"{oops", Reason.NOT_JSON, None),
        ("click", b"[1, 2]", Reason.NOT_OBJECT, None),
        ("click", _raw(user_id=...), Reason.MISSING_FIELD, "user_id"),
        ("click", _raw(event_id=7), Reason.WRONG_TYPE, "event_id"),
        ("click", _raw(user_id=""), Reason.OUT_OF_RANGE, "user_id"),
        ("click", _raw(item_id="x" * 129), Reason.OUT_OF_RANGE, "item_id"),
        ("click", _raw(ts="yesterday"), Reason.WRONG_TYPE, "ts"),
        ("click", _raw(ts=True), Reason.WRONG_TYPE, "ts"),
        ("click", _raw(ts=-1), Reason.OUT_OF_RANGE, "ts"),
        ("click", _raw(schema="v2"), Reason.BAD_SCHEMA, "schema"),
        ("click", _raw(type="dwell"), Reason.TYPE_MISMATCH, "type"),
        ("dwell", _raw(), Reason.MISSING_FIELD, "seconds"),
        ("dwell", _raw(seconds=86401), Reason.OUT_OF_RANGE, "seconds"),
        ("skip", _raw(after_seconds=-0.1), Reason.OUT_OF_RANGE, "after_seconds"),
        ("impression", _raw(items=[], rec_id="r"), Reason.OUT_OF_RANGE, "items"),
        ("impression", _raw(items=[str(i) for i in range(101)], rec_id="r"), Reason.OUT_OF_RANGE, "items"),
        ("impression", _raw(items=["a", 3], rec_id="r"), Reason.WRONG_TYPE, "items"),
        ("impression", _raw(items=["a"]), Reason.MISSING_FIELD, "rec_id"),
        ("user", _raw(attributes={"plan": 3}), Reason.WRONG_TYPE, "attributes"),
        ("item", _raw(categories="news", created_at=0), Reason.WRONG_TYPE, "categories"),
        ("click", _raw(context="mobile"), Reason.WRONG_TYPE, "context"),
    ],
)
def test_invalid_events_name_reason_and_field(event_type, raw, reason, field):
    with pytest.raises(InvalidEvent) as err:
        validate_event(event_type, raw)
    assert err.value.reason == reason
    assert err.value.field == field
    if field:
        assert repr(field) in str(err.value) or field in str(err.value)


def test_size_limit_is_enforced_before_parsing():
    raw = _raw(padding="x" * MAX_MESSAGE_BYTES)
    with pytest.raises(InvalidEvent) as err:
        validate_event("click", raw)
    assert err.value.reason == Reason.TOO_LARGE
    assert str(MAX_MESSAGE_BYTES) in str(err.value)


def test_unknown_fields_are_kept_and_ignored():
    ev = validate_event("click", _raw(experiment="b", context={"device": "tv"}))
    assert ev.raw["experiment"] == "b"


def test_impression_item_id_defaults_to_first_item():
    assert validate_event("impression", _raw(item_id=..., items=["z", "y"], rec_id="r")).item_id == "z"


def test_unknown_event_type():
    with pytest.raises(InvalidEvent) as err:
        validate_event("purchase", _raw())
    assert err.value.reason == Reason.UNKNOWN_TYPE


def test_make_event_round_trips_through_encode():
    payload = make_event("dwell", event_id="e", user_id="u", item_id="i", ts=3, seconds=12.5)
    assert validate_event("dwell", encode(payload)).seconds == 12.5


def test_make_event_refuses_invalid_payloads():
    with pytest.raises(InvalidEvent):
        make_event("dwell", event_id="e", user_id="u", item_id="i", ts=3)


def test_contract_imports_neither_faust_nor_confluent_kafka_nor_msgspec():
    import subprocess
    import sys

    code = ("import sys, stream.contract; "
            "print(any(m.split('.')[0] in ('faust', 'confluent_kafka', 'msgspec') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_an_integer_too_large_for_a_float_is_not_a_finite_number():
    # Guards a crash: math.isfinite raised OverflowError, which no caller caught.
    raw = _raw(ts=...)[:-1] + b', "ts": 1' + b"0" * 400 + b"}"
    with pytest.raises(InvalidEvent) as err:
        validate_event("click", raw)
    assert (err.value.reason, err.value.field) == (Reason.WRONG_TYPE, "ts")
    assert "must be a finite number" in str(err.value)


def test_an_integer_longer_than_python_converts_is_not_json():
    # Guards a crash: json.loads raised a plain ValueError (int max str digits), not JSONDecodeError.
    raw = _raw()[:-1] + b', "extra": 1' + b"0" * 5000 + b"}"
    with pytest.raises(InvalidEvent) as err:
        validate_event("click", raw)
    assert err.value.reason == Reason.NOT_JSON
    assert str(err.value) == "message is not JSON: a number has more than 4300 digits"
