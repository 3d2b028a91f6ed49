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
        ("impression", {"items": ["a", "b"], "context": {"rec_id": "r1"}}),
        ("impression", {"items": ["a", "b"], "rec_id": "r1", "context": {"rec_id": "r1"}}),
        ("purchase", {}),
        ("purchase", {"value": 0, "currency": "EUR"}),
        ("purchase", {"value": 1e9, "currency": "JPY", "context": {"rec_id": "r1", "position": 99}}),
        ("purchase", {"currency": "USD"}),
        ("click", {"context": {"rec_id": "r1", "position": 0, "session_id": "s", "device": "tv", "other": [1]}}),
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
        ("click", _raw(item_id="i\ud800"), Reason.NOT_UTF8, "item_id"),  # an escape with no UTF-8 form
        ("item", _raw(user_id=..., categories=["news", "\udc00"], created_at=0), Reason.NOT_UTF8, "categories[1]"),
        ("user", _raw(item_id=..., attributes={"plan\ud800": "pro"}), Reason.NOT_UTF8, "attributes.plan\\ud800"),
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
        ("purchase", _raw(item_id=...), Reason.MISSING_FIELD, "item_id"),
        ("purchase", _raw(value=12.5), Reason.MISSING_FIELD, "currency"),
        ("purchase", _raw(value=-1, currency="EUR"), Reason.OUT_OF_RANGE, "value"),
        ("purchase", _raw(value=1e9 + 0.5, currency="EUR"), Reason.OUT_OF_RANGE, "value"),
        ("purchase", _raw(value="12", currency="EUR"), Reason.WRONG_TYPE, "value"),
        ("purchase", _raw(value=float("inf"), currency="EUR"), Reason.WRONG_TYPE, "value"),
        ("purchase", _raw(value=3, currency="eur"), Reason.OUT_OF_RANGE, "currency"),
        ("purchase", _raw(currency="EURO"), Reason.OUT_OF_RANGE, "currency"),
        ("purchase", _raw(value=3, currency=978), Reason.WRONG_TYPE, "currency"),
        ("purchase", _raw(type="click"), Reason.TYPE_MISMATCH, "type"),
        ("purchase", _raw(context=[]), Reason.WRONG_TYPE, "context"),
        ("purchase", _raw(context={"position": 100}), Reason.OUT_OF_RANGE, "context.position"),
        ("click", _raw(context={"position": -1}), Reason.OUT_OF_RANGE, "context.position"),
        ("dwell", _raw(seconds=1, context={"position": 2.0}), Reason.WRONG_TYPE, "context.position"),
        ("skip", _raw(after_seconds=1, context={"position": True}), Reason.WRONG_TYPE, "context.position"),
        ("click", _raw(context={"rec_id": ""}), Reason.OUT_OF_RANGE, "context.rec_id"),
        ("impression", _raw(items=["a"], context={"rec_id": 5}), Reason.WRONG_TYPE, "context.rec_id"),
        ("impression", _raw(items=["a"], rec_id="r1", context={"rec_id": "r2"}), Reason.FIELD_MISMATCH,
         "context.rec_id"),
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
        validate_event("refund", _raw())
    assert err.value.reason == Reason.UNKNOWN_TYPE


# What producers sent before rec_id, position and purchases were checked: the simulator's
# events (producers/simulator.py: a 0-based position, no rec_id on clicks), events with no
# context, a null one, and a user event whose context is anything of an object.
OLD_STYLE = [
    ("impression", {"items": ["a", "b"], "rec_id": "sim1-s1-0", "context": {"session_id": "sim1-s1", "device": "tv"}}),
    ("click", {"context": {"session_id": "sim1-s1", "device": "tv", "position": 0}}),
    ("dwell", {"seconds": 31.5, "context": {"session_id": "sim1-s1", "device": "web", "position": 7}}),
    ("skip", {"after_seconds": 2, "context": {"device": "web", "position": 3}}),
    ("click", {}),
    ("click", {"context": None}),
    ("click", {"context": {}, "rec_id": 12, "position": "top"}),  # top-level: unknown fields, ignored
    ("user", {"item_id": ..., "attributes": {}, "context": {"rec_id": 7, "position": "x"}}),
]


@pytest.mark.parametrize("event_type, extra", OLD_STYLE)
def test_old_style_messages_stay_valid(event_type, extra):
    ev = validate_event(event_type, _raw(**extra))
    context = extra.get("context") or {}
    assert ev.rec_id == (extra["rec_id"] if event_type == "impression" else None)
    assert ev.position == (context.get("position") if event_type != "user" else None)
    assert (ev.value, ev.currency) == (None, None)


def test_purchase_properties():
    ev = validate_event("purchase", _raw(value=12, currency="EUR", context={"rec_id": "r", "position": 4}))
    assert (ev.item_id, ev.value, type(ev.value), ev.currency, ev.rec_id, ev.position) == ("i1", 12.0, float, "EUR", "r", 4)
    bare = validate_event("purchase", _raw())
    assert (bare.value, bare.currency, bare.rec_id, bare.position) == (None, None, None, None)


def test_make_event_builds_purchases():
    payload = make_event("purchase", event_id="p", user_id="u", item_id="i", ts=3, value=9.5, currency="USD",
                         context={"rec_id": "r", "position": 0})
    assert validate_event("purchase", encode(payload)).value == 9.5
    with pytest.raises(InvalidEvent) as err:
        make_event("purchase", event_id="p", user_id="u", item_id="i", ts=3, value=9.5)
    assert (err.value.reason, err.value.field) == (Reason.MISSING_FIELD, "currency")


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


def test_strings_with_no_utf8_form_are_refused_from_dicts_and_text_too():
    """The SDKs validate dicts, and a str may hold a raw surrogate: refused the same way, and the
    message names the place without the character (a dead letter's detail is UTF-8 itself)."""
    with pytest.raises(InvalidEvent) as exc:
        validate_event("click", {**BASE, "user_id": "u\udfff"})
    assert (exc.value.reason, exc.value.field) == (Reason.NOT_UTF8, "user_id")
    assert str(exc.value).encode("utf-8")
    with pytest.raises(InvalidEvent) as exc:
        validate_event("click", json.dumps({**BASE, "item_id": "i"}).replace('"i"', '"i\ud800"'))
    assert exc.value.reason == Reason.NOT_UTF8
    assert validate_event("click", {**BASE, "item_id": "caf\u00e9 \U0001f600"}).item_id == "café 😀"
