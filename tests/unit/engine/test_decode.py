"""Known answers for the batch validator (stream/engine/decode.py, stream/engine/validate.py):
the edge cases where the C fast path and validate_event could part, one by one."""

from __future__ import annotations

import json
import math
import sys

import msgspec
import pytest

from stream.contract import MAX_MESSAGE_BYTES, Event, validate_event
from stream.engine.decode import MAX_DEPTH, decode_event
from stream.engine.validate import Record, validate_records

TOPICS = {"clicks": "click", "dwell": "dwell", "skips": "skip", "impressions": "impression", "purchases": "purchase"}
TOPIC_OF = {t: topic for topic, t in TOPICS.items()}
BASE = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1700000000.5, "schema": "v1"}
EXTRA = {"click": {}, "dwell": {"seconds": 12.5}, "skip": {"after_seconds": 3}, "impression": {"items": ["a", "b"], "rec_id": "r"},
         "purchase": {"value": 19.99, "currency": "EUR"}}


def msg(event_type="click", text_after: str = "", **changes) -> bytes:
    """A valid message of ``event_type`` with ``changes`` (... drops a field), plus raw JSON text."""
    obj = {**BASE, **EXTRA[event_type], **changes}
    text = json.dumps({k: v for k, v in obj.items() if v is not ...}, ensure_ascii=False)
    return (text[:-1] + text_after + "}").encode("utf-8")


def both(event_type: str, value: bytes | None, key: bytes | None = b"u1"):
    """(fast decode, validate_records fast, validate_records per record) of one record."""
    rec = [Record(TOPIC_OF.get(event_type, "elsewhere"), 0, 0, key, value)]
    fast = validate_records(rec, TOPICS)
    assert fast == validate_records(rec, TOPICS, fast=False)  # same events (by ==) and rejections
    outcome = [("ok", ev) for _, ev in fast[0]] + [(reason, detail) for _, reason, detail in fast[1]]
    return decode_event(event_type, value), outcome[0]


def rejected(event_type: str, value: bytes | None, key: bytes | None = b"u1", decodes: bool = False):
    fast, (reason, detail) = both(event_type, value, key)
    assert (fast is not None) == decodes  # only a key that is not the user_id rejects a decoded event
    return reason, detail


def accepted(event_type: str, value: bytes, key: bytes | None = b"u1", fast_path: bool = True) -> Event:
    fast, (status, ev) = both(event_type, value, key)
    assert status == "ok"
    assert (fast is not None) == fast_path
    ref = validate_event(event_type, value)
    for name in ("type", "event_id", "user_id", "item_id", "ts", "seconds", "after_seconds", "items", "rec_id",
                 "position", "value", "currency"):
        assert repr(getattr(ev, name)) == repr(getattr(ref, name)), name
    assert list(ev.raw.items()) == list(ref.raw.items())
    return ev


def test_valid_events_of_every_type_take_the_fast_path():
    for event_type in EXTRA:
        value = msg(event_type, context={"device": "tv"})
        assert "raw" not in vars(decode_event(event_type, value))  # the fast path built it, raw not decoded
        ev = accepted(event_type, value)
        assert ev.type == event_type and ev.item_id == "i1"


def test_bool_is_not_a_number():
    assert rejected("click", msg(ts=True)) == ("wrong_type", "field 'ts' is True: must be a finite number")
    assert rejected("dwell", msg("dwell", seconds=False))[0] == "wrong_type"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_wrong_type_and_kept_in_unknown_fields(literal):
    reason, detail = rejected("dwell", msg("dwell", seconds=..., text_after=f', "seconds": {literal}'))
    assert reason == "wrong_type" and "must be a finite number" in detail
    # json reads NaN in a field the contract ignores, msgspec does not: the per-record way takes
    # it. 1e400 is JSON: msgspec skips it, and raw has it as json reads it, inf.
    ev = accepted("click", msg(text_after=f', "x": {literal}'), fast_path=literal == "1e400")
    assert not math.isfinite(ev.raw["x"])


def test_integers_stay_integers_and_ts_is_a_float():
    dwell = accepted("dwell", msg("dwell", ts=5, seconds=12))
    assert (type(dwell.ts), type(dwell.seconds), dwell.seconds) == (float, int, 12)
    assert type(accepted("dwell", msg("dwell", seconds=12.0)).seconds) is float
    assert type(accepted("skip", msg("skip", after_seconds=3)).after_seconds) is int
    assert repr(accepted("click", msg(text_after=', "ts": -0.0', ts=...)).ts) == "-0.0"
    assert repr(accepted("click", msg(text_after=', "ts": -0', ts=...)).ts) == "0.0"
    assert accepted("click", msg(ts=2**53 + 1)).ts == float(2**53 + 1)


def test_numbers_at_the_limits():
    accepted("dwell", msg("dwell", seconds=86400))
    accepted("dwell", msg("dwell", seconds=..., text_after=', "seconds": 86400.000000000000001'))  # rounds to 86400.0
    assert rejected("dwell", msg("dwell", seconds=86400.0001))[0] == "out_of_range"
    assert rejected("skip", msg("skip", after_seconds=-1e-9))[0] == "out_of_range"
    # integers: beyond int64 the per-record way; too large for a float, wrong_type there
    accepted("skip", msg("skip", after_seconds=2**63), fast_path=False)
    assert rejected("skip", msg("skip", after_seconds=10**400)) == (
        "wrong_type", f"field 'after_seconds' is {str(10**400)[:57]}...: must be a finite number")
    accepted("click", msg(ts=int(sys.float_info.max)))
    assert rejected("click", msg(ts=2**1024 - 2**970))[0] == "wrong_type"  # rounds to inf


def test_the_size_limit_and_long_messages():
    big = msg(padding="x" * MAX_MESSAGE_BYTES)
    assert rejected("click", big) == ("too_large", f"message is {len(big)} bytes: must be at most {MAX_MESSAGE_BYTES} bytes")
    # valid but longer than json's integer digit limit: the per-record way, same event
    accepted("click", msg(padding="x" * 5000), fast_path=False)
    accepted("click", msg(padding="x" * 4000))


def test_an_integer_longer_than_json_converts_is_not_json():
    value = msg(text_after=', "x": 1' + "0" * 4400)
    assert rejected("click", value) == ("not_json", "message is not JSON: a number has more than 4300 digits")


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82"])
def test_bytes_that_are_not_utf8_anywhere_are_not_utf8(bad):
    value = msg(x="ab").replace(b'"ab"', b'"a' + bad + b'b"')  # in a field msgspec would only skip
    # msgspec does not check what it skips: the UTF-8 check is the fast path's own
    assert msgspec.json.decode(value, type=_EventId).event_id == "e1"
    reason, detail = rejected("click", value)
    assert reason == "not_utf8" and detail.startswith("message is not UTF-8: ")


class _EventId(msgspec.Struct):
    event_id: str


def test_utf8_beyond_ascii_and_escapes_take_the_fast_path():
    ev = accepted("click", msg(user_id="é中😀", item_id="\u2028\x7f"), key="é中😀".encode())
    assert ev.user_id == "é中😀"
    escaped = json.dumps({**BASE, "user_id": "é中😀", "item_id": "\u2028\x7f"}).encode()  # \u00e9, \ud83d\ude00...
    assert escaped.isascii()
    ev = accepted("click", escaped, key=None)
    assert (ev.user_id, ev.item_id) == ("é中😀", "\u2028\x7f")


def test_a_lone_surrogate_escape_is_refused_by_both_ways():
    """msgspec refuses it, and the per-record way says why: an id with no UTF-8 form could
    be neither hashed nor stored (a pair of surrogate escapes is one character: taken)."""
    assert rejected("click", msg(text_after=', "event_id": "\\ud800"', event_id=...)) == \
        ("not_utf8", "field 'event_id' holds a lone surrogate (U+D800): strings must be UTF-8 text")
    assert rejected("click", msg(text_after=', "context": {"note": ["ok", "\\udfff"]}'))[0] == "not_utf8"
    assert accepted("click", msg(text_after=', "event_id": "\\ud83d\\ude00"', event_id=...)).event_id == "\U0001f600"


def test_duplicate_keys_the_last_one_counts():
    assert accepted("click", msg(text_after=', "user_id": "u2"'), key=b"u2").user_id == "u2"
    assert rejected("click", msg(text_after=', "user_id": 7')) == ("wrong_type", "field 'user_id' is 7: must be a string")
    # the first one bad, the last one good: valid, and the per-record way says so
    value = b'{"user_id": 7, ' + msg()[1:]
    assert accepted("click", value, fast_path=False).user_id == "u1"
    # an escaped key is the same key
    assert accepted("click", msg(text_after=', "\\u0074s": 5')).ts == 5.0


def test_null_fields():
    assert rejected("click", msg(item_id=None)) == ("missing_field", "field 'item_id' is missing: it is required")
    assert rejected("click", msg(ts=None))[0] == "missing_field"
    assert accepted("click", msg(type=None, context=None)).type == "click"
    assert accepted("impression", msg("impression", item_id=None)).item_id == "a"


def test_a_type_field_must_agree_with_the_topic():
    accepted("dwell", msg("dwell", type="dwell"))
    assert rejected("dwell", msg("dwell", type="click")) == (
        "type_mismatch", "field 'type' is 'click': this topic carries 'dwell' events")
    assert rejected("click", msg(type="Click"))[0] == "type_mismatch"
    assert rejected("click", msg(type=1))[0] == "type_mismatch"


def test_id_lengths_are_counted_in_characters():
    accepted("click", msg(item_id="é" * 128))  # 256 bytes
    accepted("click", msg(item_id="😀" * 128))  # 512 bytes
    assert rejected("click", msg(item_id="é" * 129)) == (
        "out_of_range", "field 'item_id' has length 129: must be 1..128 characters")
    assert rejected("click", msg(item_id=""))[0] == "out_of_range"


def test_impressions():
    assert accepted("impression", msg("impression", item_id=...)).item_id == "a"
    ev = accepted("impression", msg("impression", item_id="b"))
    assert (ev.item_id, ev.items) == ("b", ["a", "b"])
    ev.items.append("c")
    assert ev.items == ["a", "b"]  # a copy each time, as from raw
    assert rejected("impression", msg("impression", items=[]))[0] == "out_of_range"
    assert rejected("impression", msg("impression", items=["a", 3]))[0] == "wrong_type"
    assert rejected("impression", msg("impression", rec_id=...))[0] == "missing_field"


@pytest.mark.parametrize("context", ["tv", [], 3, True])
def test_context_must_be_an_object(context):
    assert rejected("click", msg(context=context))[:1] == ("wrong_type",)


def test_the_key_must_be_the_user_id():
    assert rejected("click", msg(), key=b"u2", decodes=True) == (
        "key_mismatch", "message key b'u2' differs from user_id 'u1': key must be the user_id")
    accepted("click", msg(), key=None)
    # as before: the key is compared decoded with replacement characters
    accepted("click", msg(user_id="\ufffd"), key=b"\xff")


def test_unknown_topic_and_tombstone():
    assert rejected("user", msg()) == ("unknown_topic", "topic 'elsewhere' carries no known event type")
    assert rejected("click", None) == (
        "not_json", "message has no value (a tombstone): events must be JSON objects")


def test_malformed_and_not_an_object():
    assert rejected("click", msg()[:-3])[0] == "not_json"
    assert rejected("click", b"\xef\xbb\xbf" + msg())[0] == "not_json"
    assert rejected("click", msg() + b" x")[0] == "not_json"
    assert rejected("click", b"[1, 2]") == ("not_object", "message is a JSON list: must be a JSON object")


def test_deep_nesting_is_left_to_json():
    depth = MAX_DEPTH  # and the message's own {: one bracket too many
    accepted("click", msg(text_after=', "nest": ' + "[" * depth + "]" * depth), fast_path=False)
    depth = MAX_DEPTH - 1
    accepted("click", msg(text_after=', "nest": ' + "[" * depth + "]" * depth))
    too_deep = msg(text_after=', "nest": ' + "[" * 5000 + "]" * 5000)
    assert rejected("click", too_deep) == ("not_json", "message is not JSON: nested too deeply")


def test_why_nesting_is_left_to_json_its_limit_depends_on_the_stack():
    value = msg(text_after=', "nest": ' + "[" * 330 + "]" * 330)

    def at_depth(n, read):
        return at_depth(n - 1, read) if n else read()

    assert decode_event("click", value) is None  # deeper than MAX_DEPTH: fine here, but
    json.loads(value)
    with pytest.raises(RecursionError):
        at_depth(sys.getrecursionlimit() - 250, lambda: json.loads(value))


def test_the_properties_need_no_raw_and_raw_is_decoded_on_first_use():
    value = msg("dwell", seconds=7, text_after=', "experiment": "b", "after_seconds": "x", "items": null')
    ev = decode_event("dwell", value)
    # a dwell's own seconds, checked; another type's field as it came, as raw.get gives it
    assert (ev.seconds, ev.after_seconds) == (7, "x")
    with pytest.raises(TypeError):
        ev.items  # noqa: B018 - list(None), as validate_event's event raises
    assert decode_event("click", msg()).items == [] and decode_event("click", msg()).seconds is None
    assert "raw" not in vars(ev)  # the worker reads every event's seconds: no json.loads for it
    assert ev.raw == json.loads(value) and ev.raw["experiment"] == "b"
    assert vars(ev)["raw"] is ev.raw  # decoded once
    ref = validate_event("dwell", value)
    assert (ev == ref, hash(ev) == hash(ref), repr(ev) == repr(ref)) == (True, True, True)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ev.nothing  # noqa: B018


def test_purchases():
    ev = accepted("purchase", msg("purchase", context={"rec_id": "r7", "position": 2, "device": "tv"}))
    assert (ev.item_id, ev.value, ev.currency, ev.rec_id, ev.position) == ("i1", 19.99, "EUR", "r7", 2)
    assert "raw" not in vars(decode_event("purchase", msg("purchase")))
    ev = accepted("purchase", msg("purchase", value=5))  # an integer value is read as a float
    assert (type(ev.value), ev.value, ev.raw["value"]) == (float, 5.0, 5)
    assert accepted("purchase", msg("purchase", value=..., currency=...)).value is None
    assert accepted("purchase", msg("purchase", value=None, currency="JPY")).currency == "JPY"  # no value: fine
    accepted("purchase", msg("purchase", value=1e9))
    accepted("purchase", msg("purchase", value=0))
    assert rejected("purchase", msg("purchase", value=-0.01)) == (
        "out_of_range", "field 'value' is -0.01: must be >= 0 and <= 1e+09")
    assert rejected("purchase", msg("purchase", value=1e9 + 1))[0] == "out_of_range"
    assert rejected("purchase", msg("purchase", value="9.99"))[0] == "wrong_type"
    assert rejected("purchase", msg("purchase", value=True))[0] == "wrong_type"
    assert rejected("purchase", msg("purchase", value=..., text_after=', "value": NaN'))[0] == "wrong_type"
    assert rejected("purchase", msg("purchase", currency=...)) == (
        "missing_field", "field 'currency' is missing: it is required")
    assert rejected("purchase", msg("purchase", currency=None))[0] == "missing_field"
    assert rejected("purchase", msg("purchase", item_id=...))[0] == "missing_field"
    assert rejected("purchase", msg("purchase", type="click"))[0] == "type_mismatch"


@pytest.mark.parametrize("currency, reason", [("usd", "out_of_range"), ("US", "out_of_range"), ("EURO", "out_of_range"),
                                              ("US1", "out_of_range"), ("EUR\n", "out_of_range"), ("ÉUR", "out_of_range"),
                                              ("", "out_of_range"), (978, "wrong_type"), (["EUR"], "wrong_type")])
def test_a_currency_is_three_uppercase_ascii_letters(currency, reason):
    assert rejected("purchase", msg("purchase", currency=currency))[0] == reason
    assert rejected("purchase", msg("purchase", value=..., currency=currency))[0] == reason  # checked without a value too


def test_context_rec_id_and_position_on_every_interaction():
    for event_type in EXTRA:
        ev = accepted(event_type, msg(event_type, context={"rec_id": "r", "position": 0, "session_id": "s"}))
        assert (ev.rec_id, ev.position) == ("r", 0)
        ev = accepted(event_type, msg(event_type, context={"rec_id": None, "position": None}))
        assert (ev.position, ev.rec_id) == (None, "r" if event_type == "impression" else None)
        accepted(event_type, msg(event_type, context={"position": 99}))
        assert rejected(event_type, msg(event_type, context={"position": 100})) == (
            "out_of_range", "field 'context.position' is 100: must be >= 0 and <= 99")
        assert rejected(event_type, msg(event_type, context={"position": -1}))[0] == "out_of_range"
        for bad in (1.0, True, "3", [1]):
            assert rejected(event_type, msg(event_type, context={"position": bad}))[0] == "wrong_type", bad
        assert rejected(event_type, msg(event_type, context={"rec_id": ""})) == (
            "out_of_range", "field 'context.rec_id' has length 0: must be 1..128 characters")
        assert rejected(event_type, msg(event_type, context={"rec_id": "x" * 129}))[0] == "out_of_range"
        assert rejected(event_type, msg(event_type, context={"rec_id": 7}))[0] == "wrong_type"
        assert rejected(event_type, msg(event_type, context="tv"))[0] == "wrong_type"


def test_a_repeated_context_field_the_last_one_counts():
    value = msg(context=...).replace(b"}", b', "context": {"position": 500, "position": 4}}')
    assert accepted("click", value, fast_path=False).position == 4  # msgspec refuses the first: json reads the last
    value = msg(context=...).replace(b"}", b', "context": {"position": 4, "position": 500}}')
    assert rejected("click", value)[0] == "out_of_range"


def test_an_impression_names_its_list_in_rec_id_or_context_and_both_agree():
    assert accepted("impression", msg("impression", rec_id=..., context={"rec_id": "r2"})).rec_id == "r2"
    assert accepted("impression", msg("impression", context={"rec_id": "r"})).rec_id == "r"
    assert rejected("impression", msg("impression", context={"rec_id": "r2"})) == (
        "field_mismatch", "field 'context.rec_id' is 'r2' and field 'rec_id' is 'r': they must be the same list")
    assert rejected("impression", msg("impression", rec_id=..., context={"position": 1}))[0] == "missing_field"
    # another type's top-level rec_id is an unknown field: kept, not read
    ev = accepted("click", msg(rec_id=3))
    assert (ev.rec_id, ev.raw["rec_id"]) == (None, 3)


def test_user_and_item_events_have_no_list_or_value():
    user = validate_event("user", {**BASE, "attributes": {}, "context": {"rec_id": 7, "position": "x"}, "value": 3})
    assert (user.rec_id, user.position, user.value, user.currency) == (None, None, None, None)
    click = accepted("click", msg(value=3, currency=["x"]))  # unknown fields of a click
    assert (click.value, click.currency) == (None, None)
