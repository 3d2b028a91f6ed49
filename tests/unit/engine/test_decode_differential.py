"""The batch validator against validate_event, on thousands of seeded messages, valid and broken.

Every message (tests/unit/engine/event_fuzz.py) goes through the fast path
(stream/engine/decode.py) and through validate_event. The fast path must accept only messages
validate_event accepts, and return the same event for them: same fields, the same values of the
same types (an int stays an int, -0.0 stays -0.0), and a ``raw`` equal key by key and in order.
Then whole batches go through validate_records, fast and per record, with keys, tombstones and
topics of their own: the same valid events and the same rejections, reason and detail.
"""

from __future__ import annotations

import random

import pytest

from stream.contract import Event, InvalidEvent, validate_event
from stream.engine.decode import decode_event
from stream.engine.validate import Record, validate_records
from tests.unit.engine.event_fuzz import TYPES, messages

N_MESSAGES = 6000
TOPICS = {f"t-{t}": t for t in TYPES}


def _outcome(read):
    try:
        value = read()
    except Exception as exc:  # noqa: BLE001 - what a property raises is part of what code sees
        return ("raises", type(exc).__name__)
    return ("value", type(value).__name__, repr(value))


def observed(ev: Event) -> dict:
    """Everything code can read from an event, values with their types."""
    seen = {name: _outcome(lambda name=name: getattr(ev, name))
            for name in ("type", "event_id", "user_id", "item_id", "ts", "seconds", "after_seconds", "items",
                         "attributes", "categories", "rec_id", "position", "value", "currency")}
    seen["raw"] = _outcome(lambda: list(ev.raw.items()))  # keys in order, values by repr (NaN, -0.0, 1 vs 1.0)
    seen["repr"], seen["hash"], seen["class"] = repr(ev), hash(ev), type(ev)
    return seen


def _reference(event_type: str, data: bytes):
    try:
        return validate_event(event_type, data), None
    except InvalidEvent as exc:
        return None, (exc.reason, str(exc))


@pytest.mark.parametrize("seed", [1, 2])
def test_the_fast_path_accepts_only_what_validate_event_accepts_and_returns_the_same_event(seed):
    fast_valid = valid = 0
    for event_type, data, how in messages(seed, N_MESSAGES // 2):
        ref, rejected = _reference(event_type, data)
        fast = decode_event(event_type, data)
        if fast is not None:
            assert ref is not None, f"fast path accepted what validate_event rejects ({how}: {rejected}): {data[:300]!r}"
            assert fast == ref
            assert observed(fast) == observed(ref), f"{how}: {data[:300]!r}"
        if ref is not None:
            valid += 1
            fast_valid += fast is not None
    # Not vacuous: most valid messages take the fast path (the rest hold what json reads and
    # msgspec refuses, such as NaN or a lone surrogate in an unknown field, or are long).
    assert valid > N_MESSAGES // 6
    assert fast_valid > 0.7 * valid, (fast_valid, valid)


def test_every_mutation_kind_is_generated_and_most_are_rejected():
    kinds, rejected = {}, 0
    for event_type, data, how in messages(3, 2000, mutated_share=1.0):
        kinds[how.split()[0]] = kinds.get(how.split()[0], 0) + 1
        rejected += _reference(event_type, data)[0] is None
    assert set(kinds) >= {"drop", "null", "bad", "duplicate", "extra", "not_object", "text", "utf8", "truncate",
                          "bom", "trailing", "flip", "whitespace", "size", "deep"}
    assert rejected > 1000


def _batch(rng: random.Random, start: int, size: int) -> list[Record]:
    records = []
    for offset, (event_type, data, _) in enumerate(messages(rng.randrange(10**9), size), start):
        topic = f"t-{event_type}" if rng.random() < 0.9 else rng.choice([*TOPICS, "t-user", "elsewhere"])
        value = data if rng.random() < 0.97 else rng.choice([None, bytearray(data)])
        try:
            user_id = validate_event(event_type, data).user_id
        except InvalidEvent:
            user_id = "u"
        key = rng.choice([user_id.encode("utf-8", "surrogatepass"), user_id.encode("utf-8", "surrogatepass"),
                          None, b"someone-else", b"\xff" + user_id.encode("utf-8", "surrogatepass")])
        records.append(Record(topic, 0, offset, key, value))
    return records


def test_validate_records_fast_and_per_record_give_the_same_events_and_rejections():
    rng = random.Random(4)
    accepted = 0
    for n in range(20):
        records = _batch(rng, n * 100, 100)
        fast_valid, fast_rejected = validate_records(records, TOPICS)
        ref_valid, ref_rejected = validate_records(records, TOPICS, fast=False)
        assert [r for r, _ in fast_valid] == [r for r, _ in ref_valid]
        for (rec, fast), (_, ref) in zip(fast_valid, ref_valid):
            assert observed(fast) == observed(ref), rec
        assert fast_rejected == ref_rejected
        accepted += len(fast_valid)
    assert accepted > 500
