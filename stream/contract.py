"""Event contract v1: schemas, validation and machine-readable rejection reasons.

This module is the one place that knows what a valid event looks like. It imports
neither Faust nor confluent-kafka (only the standard library), so producer apps,
consumers and the worker can all use it cheaply.

Every event is one JSON object (UTF-8) in one Kafka message. The topic tells the
event's type; a ``type`` field, when present, must agree with it.

Examples
--------
>>> ev = validate_event("click", b'{"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1.5, "schema": "v1"}')
>>> ev.user_id, ev.item_id, ev.type
('u1', 'i1', 'click')
>>> try:
...     validate_event("dwell", b'{"event_id": "e2", "user_id": "u1", "item_id": "i1", "ts": 1.5, "schema": "v1", "seconds": -3}')
... except InvalidEvent as exc:
...     print(exc.reason, "|", exc)
out_of_range | field 'seconds' is -3: must be >= 0 and <= 86400
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "MAX_MESSAGE_BYTES",
    "MAX_ID_LENGTH",
    "MAX_IMPRESSION_ITEMS",
    "MAX_DWELL_SECONDS",
    "MAX_PURCHASE_VALUE",
    "EVENT_TYPES",
    "INTERACTION_TYPES",
    "INTERACTION_TOPICS",
    "TOPIC_OF",
    "Reason",
    "InvalidEvent",
    "Event",
    "validate_event",
    "parse_json",
    "make_event",
    "encode",
    "RecRequest",
    "validate_rec_request",
    "ErasureRequest",
    "validate_erasure_request",
    "MAX_REQUEST_K",
]

SCHEMA_VERSION = "v1"
MAX_MESSAGE_BYTES = 64 * 1024
MAX_ID_LENGTH = 128
MAX_IMPRESSION_ITEMS = 100
MAX_DWELL_SECONDS = 86400.0
#: A purchase's ``value`` is at most this, in its ``currency``'s units.
MAX_PURCHASE_VALUE = 1e9
MAX_ATTRIBUTES = 64
MAX_CATEGORIES = 64
MAX_REQUEST_K = 100

#: Interaction events (keyed by user_id, co-partitioned topics). ``purchase`` (a conversion) came
#: later and is optional for producers: older ones never send it.
INTERACTION_TYPES = ("click", "dwell", "skip", "impression", "purchase")
#: Every event type of contract v1. ``user`` and ``item`` go to compacted topics.
EVENT_TYPES = INTERACTION_TYPES + ("user", "item")
#: Event type -> the logical topic that carries it (the real name adds STREAMREC_TOPIC_PREFIX).
TOPIC_OF = {"click": "clicks", "dwell": "dwell", "skip": "skips", "impression": "impressions",
            "purchase": "purchases", "user": "users", "item": "items"}
#: The logical topics of the interaction events: what the worker's ingest agent reads.
INTERACTION_TOPICS = tuple(TOPIC_OF[t] for t in INTERACTION_TYPES)


class Reason:
    """Machine-readable rejection reasons (the ``reason`` of a dead-letter record)."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    BAD_SCHEMA = "bad_schema"
    TYPE_MISMATCH = "type_mismatch"
    UNKNOWN_TYPE = "unknown_type"
    #: Two fields that must agree do not (an impression's ``rec_id`` and ``context.rec_id``).
    FIELD_MISMATCH = "field_mismatch"

    ALL = (
        TOO_LARGE,
        NOT_UTF8,
        NOT_JSON,
        NOT_OBJECT,
        MISSING_FIELD,
        WRONG_TYPE,
        OUT_OF_RANGE,
        BAD_SCHEMA,
        TYPE_MISMATCH,
        UNKNOWN_TYPE,
        FIELD_MISMATCH,
    )


class InvalidEvent(ValueError):
    """An event broke the contract.

    Parameters
    ----------
    reason
        One of :class:`Reason`'s codes, stable for machines.
    message
        For people: names the field, the value and the rule it broke.
    field
        The offending field, when there is one.
    """

    def __init__(self, reason: str, message: str, field: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class Event:
    """A validated event. ``raw`` keeps every field, unknown ones included.

    :func:`validate_event` makes it from the decoded message. The batch validator makes it with
    :meth:`from_message`, from fields it decoded and checked without building the message's
    dict; ``raw`` is then the message decoded on first use, exactly as :func:`validate_event`
    decodes it. Both kinds are equal, hash and print alike.
    """

    type: str
    event_id: str
    user_id: str
    item_id: str
    ts: float
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_message(cls, type: str, event_id: str, user_id: str, item_id: str, ts: float,
                     message: bytes, known: object) -> Event:
        """The event of ``message``, a message :func:`validate_event` accepts with these fields.

        Parameters
        ----------
        type, event_id, user_id, item_id, ts
            What :func:`validate_event` would return for ``message`` (the caller vouches for it).
        message
            The message bytes, decoded into ``raw`` on first use.
        known
            What the properties read, so that they need no ``raw``: attributes ``seconds``,
            ``after_seconds`` and ``items`` holding what ``raw.get`` gives (None, None and ``()``
            for a field the message lacks); ``rec_id`` and ``position`` holding what the
            properties of that name return; for a purchase, ``value`` (a float or None) and
            ``currency``.

        Examples
        --------
        >>> msg = b'{"event_id": "e", "user_id": "u", "item_id": "i", "ts": 2, "schema": "v1", "seconds": 12, "ab": "b"}'
        >>> from types import SimpleNamespace
        >>> known = SimpleNamespace(seconds=12, after_seconds=None, items=(), rec_id=None, position=None)
        >>> ev = Event.from_message("dwell", "e", "u", "i", 2.0, msg, known)
        >>> ev == validate_event("dwell", msg), ev.seconds, ev.raw["ab"], ev.rec_id
        (True, 12, 'b', None)
        """
        ev = _new_object(cls)
        # What __init__ stores, without its object.__setattr__ per field (frozen): half the
        # time, and building the event is the batch validator's largest cost after decoding.
        _set_attribute(ev, "__dict__", {"type": type, "event_id": event_id, "user_id": user_id, "item_id": item_id,
                                        "ts": ts, "_message": message, "_known": known})
        return ev

    def __getattr__(self, name: str) -> Any:
        # Reached only when the attribute is not there: ``raw`` of an event from from_message.
        message = self.__dict__.get("_message")
        if name != "raw" or message is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raw = parse_json(message)
        self.__dict__["raw"] = raw  # once; the dict a frozen dataclass keeps its fields in
        return raw

    def _field(self, name: str, default: Any = None) -> Any:
        known = self.__dict__.get("_known")
        return self.raw.get(name, default) if known is None else getattr(known, name)

    @property
    def seconds(self) -> float | None:
        return self._field("seconds")

    @property
    def after_seconds(self) -> float | None:
        return self._field("after_seconds")

    @property
    def items(self) -> list[str]:
        return list(self._field("items", ()))

    @property
    def rec_id(self) -> str | None:
        """The served list this interaction answers: ``context.rec_id``, else an impression's own
        ``rec_id`` (they agree when both are there); None when not known."""
        if self.type not in INTERACTION_TYPES:
            return None
        known = self.__dict__.get("_known")
        if known is not None:
            return known.rec_id
        rec_id = _context(self.raw).get("rec_id")
        return self.raw.get("rec_id") if rec_id is None and self.type == "impression" else rec_id

    @property
    def position(self) -> int | None:
        """The item's 0-based place in that list (``context.position``); None when not known."""
        if self.type not in INTERACTION_TYPES:
            return None
        known = self.__dict__.get("_known")
        return _context(self.raw).get("position") if known is None else known.position

    @property
    def value(self) -> float | None:
        """A purchase's value in :attr:`currency` (None: not given, or not a purchase)."""
        value = self._field("value") if self.type == "purchase" else None
        return None if value is None else float(value)

    @property
    def currency(self) -> str | None:
        """A purchase's ISO 4217 currency code (None: not given, or not a purchase)."""
        return self._field("currency") if self.type == "purchase" else None

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self.raw.get("attributes", {}))

    @property
    def categories(self) -> list[str]:
        return list(self.raw.get("categories", ()))


_new_object = object.__new__
_set_attribute = object.__setattr__


def _context(obj: dict) -> dict:
    context = obj.get("context")
    return context if isinstance(context, dict) else {}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _require(obj: dict, name: str, where: str = "") -> Any:
    """``obj[name]``; ``where`` names the object the field is in (``"context."``), for messages."""
    if name not in obj or obj[name] is None:
        raise InvalidEvent(Reason.MISSING_FIELD, f"field {where + name!r} is missing: it is required", where + name)
    return obj[name]


def _check_id(obj: dict, name: str, required: bool = True, where: str = "") -> str | None:
    if not required and obj.get(name) is None:
        return None
    value = _require(obj, name, where)
    name = where + name
    if not isinstance(value, str):
        raise InvalidEvent(
            Reason.WRONG_TYPE, f"field {name!r} is {_short(value)}: must be a string", name
        )
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidEvent(
            Reason.OUT_OF_RANGE,
            f"field {name!r} has length {len(value)}: must be 1..{MAX_ID_LENGTH} characters",
            name,
        )
    return value


def _check_optional_int(obj: dict, name: str, low: int, high: int, where: str = "") -> int | None:
    """An optional integer field (a JSON true is not one) in ``low..high``; None when absent or null."""
    value = obj.get(name)
    if value is None:
        return None
    name = where + name
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(Reason.WRONG_TYPE, f"field {name!r} is {_short(value)}: must be an integer", name)
    if not low <= value <= high:
        raise InvalidEvent(Reason.OUT_OF_RANGE, f"field {name!r} is {value}: must be >= {low} and <= {high}", name)
    return value


def _check_currency(obj: dict, required: bool) -> str | None:
    """An ISO 4217 code's shape: three uppercase ASCII letters (whether the code is assigned is not checked)."""
    if not required and obj.get("currency") is None:
        return None
    value = _require(obj, "currency")
    if not isinstance(value, str):
        raise InvalidEvent(Reason.WRONG_TYPE, f"field 'currency' is {_short(value)}: must be a string", "currency")
    if not (len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()):
        raise InvalidEvent(Reason.OUT_OF_RANGE,
                           f"field 'currency' is {_short(value)}: must be an ISO 4217 code, 3 uppercase ASCII letters",
                           "currency")
    return value


def _check_context(obj: dict, event_type: str, own_rec_id: str | None) -> None:
    """``context``: an object; for an interaction, its ``rec_id`` and ``position`` (an impression's
    ``own_rec_id``, its top-level ``rec_id``, must agree with ``context.rec_id``; one is required)."""
    context = obj.get("context")
    if context is not None and not isinstance(context, dict):
        raise InvalidEvent(Reason.WRONG_TYPE, f"field 'context' is {_short(context)}: must be an object", "context")
    if event_type not in INTERACTION_TYPES:
        return
    context = context or {}
    rec_id = _check_id(context, "rec_id", required=False, where="context.")
    _check_optional_int(context, "position", 0, MAX_IMPRESSION_ITEMS - 1, where="context.")
    if event_type != "impression":
        return
    if rec_id is None and own_rec_id is None:
        raise InvalidEvent(Reason.MISSING_FIELD, "field 'rec_id' is missing: an impression names its list "
                           "(in 'rec_id' or 'context.rec_id')", "rec_id")
    if rec_id is not None and own_rec_id is not None and rec_id != own_rec_id:
        raise InvalidEvent(Reason.FIELD_MISMATCH, f"field 'context.rec_id' is {_short(rec_id)} and field 'rec_id' is "
                           f"{_short(own_rec_id)}: they must be the same list", "context.rec_id")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_schema(obj: dict) -> None:
    schema = _require(obj, "schema")
    if schema != SCHEMA_VERSION:
        raise InvalidEvent(Reason.BAD_SCHEMA, f"field 'schema' is {_short(schema)}: must be {SCHEMA_VERSION!r}", "schema")


def _request(data: bytes | str | dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """A request's object (schema checked) with its ``request_id`` and ``user_id``: what every
    request of contract v1 carries."""
    obj = data if isinstance(data, dict) else parse_json(data)
    _check_schema(obj)
    return obj, _check_id(obj, "request_id"), _check_id(obj, "user_id")


def _check_number(obj: dict, name: str, low: float | None = None, high: float | None = None) -> float:
    value = _require(obj, name)
    # bool is an int in Python; a JSON true is not a number here. An integer too large for a
    # float (OverflowError from isfinite) is as infinite as 1e400, which json reads as inf.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise InvalidEvent(
            Reason.WRONG_TYPE, f"field {name!r} is {_short(value)}: must be a finite number", name
        )
    if (low is not None and value < low) or (high is not None and value > high):
        rule = " and ".join(
            part
            for part in (
                f">= {low:g}" if low is not None else "",
                f"<= {high:g}" if high is not None else "",
            )
            if part
        )
        raise InvalidEvent(Reason.OUT_OF_RANGE, f"field {name!r} is {value!r}: must be {rule}", name)
    return float(value)


def _check_str_list(obj: dict, name: str, max_len: int, min_len: int = 0) -> list[str]:
    value = _require(obj, name)
    if not isinstance(value, list):
        raise InvalidEvent(
            Reason.WRONG_TYPE, f"field {name!r} is {_short(value)}: must be a list of strings", name
        )
    if not min_len <= len(value) <= max_len:
        raise InvalidEvent(
            Reason.OUT_OF_RANGE,
            f"field {name!r} has {len(value)} entries: must have {min_len}..{max_len}",
            name,
        )
    for entry in value:
        if not isinstance(entry, str) or not 1 <= len(entry) <= MAX_ID_LENGTH:
            raise InvalidEvent(
                Reason.WRONG_TYPE,
                f"field {name!r} holds {_short(entry)}: entries must be strings of 1..{MAX_ID_LENGTH} characters",
                name,
            )
    return value


def _lone_surrogate(value: Any, path: tuple = ()) -> tuple[tuple, str] | None:
    """(the path of keys and list positions, the code point) to the first string in ``value``
    (keys too) holding a lone surrogate, which has no UTF-8 (a JSON ``\\ud800`` escape decodes
    to one); None if none does."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                return path, f"U+{ord(value[exc.start]):04X}"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key, path + (key,)) or _lone_surrogate(item, path + (key,))
            if found:
                return found
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found = _lone_surrogate(item, path + (n,))
            if found:
                return found
    return None


def _check_text(obj: dict) -> None:
    """Every string of the event is text that has a UTF-8 form: ids become Redis keys, hashes and
    binary records, none of which can hold a lone surrogate."""
    found = _lone_surrogate(obj)
    if found:
        path, code = found
        where = ""
        for step in path:  # a bad key is named escaped: the detail itself must be UTF-8
            where += f"[{step}]" if isinstance(step, int) else \
                ("." if where else "") + str(step).encode("utf-8", "backslashreplace").decode("utf-8")
        where = where or "message"
        raise InvalidEvent(Reason.NOT_UTF8, f"field {where!r} holds a lone surrogate ({code}): strings must be "
                           "UTF-8 text", where)


def parse_json(data: bytes | str) -> dict[str, Any]:
    """Decode one message into a JSON object, enforcing the size limit."""
    try:
        size = len(data.encode("utf-8") if isinstance(data, str) else data)
    except UnicodeEncodeError as exc:
        raise InvalidEvent(Reason.NOT_UTF8, f"message is not UTF-8 text: a lone surrogate at character {exc.start}") \
            from None
    if size > MAX_MESSAGE_BYTES:
        raise InvalidEvent(
            Reason.TOO_LARGE, f"message is {size} bytes: must be at most {MAX_MESSAGE_BYTES} bytes"
        )
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEvent(Reason.NOT_UTF8, f"message is not UTF-8: {exc.reason} at byte {exc.start}") from None
    else:
        text = data
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError beside JSONDecodeError: an integer longer than Python converts
        # (sys.get_int_max_str_digits(), 4300 digits by default).
        if isinstance(exc, json.JSONDecodeError):
            detail = exc.msg
        elif isinstance(exc, RecursionError):
            detail = "nested too deeply"
        else:
            detail = f"a number has more than {sys.get_int_max_str_digits()} digits"
        raise InvalidEvent(Reason.NOT_JSON, f"message is not JSON: {detail}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(
            Reason.NOT_OBJECT, f"message is a JSON {type(obj).__name__}: must be a JSON object"
        )
    return obj


def validate_event(event_type: str, data: bytes | str | dict[str, Any]) -> Event:
    """Validate one message of ``event_type`` (the type its topic carries).

    Parameters
    ----------
    event_type
        One of :data:`EVENT_TYPES`.
    data
        The message value as bytes/str (size-checked and decoded) or an already decoded dict.

    Returns
    -------
    Event
        The validated event. For ``user`` events ``item_id`` is ``""``; for ``item`` events
        ``user_id`` is ``""``.

    Raises
    ------
    InvalidEvent
        With a :class:`Reason` code and a message naming the field and the rule.
    """
    if event_type not in EVENT_TYPES:
        raise InvalidEvent(
            Reason.UNKNOWN_TYPE, f"event type {event_type!r} is unknown: must be one of {', '.join(EVENT_TYPES)}"
        )
    obj = data if isinstance(data, dict) else parse_json(data)
    if not isinstance(data, (bytes, bytearray)) or b"\\u" in data:  # JSON bytes without a \u escape
        _check_text(obj)  # decode to strings that all have a UTF-8 form

    _check_schema(obj)
    declared = obj.get("type")
    if declared is not None and declared != event_type:
        raise InvalidEvent(
            Reason.TYPE_MISMATCH,
            f"field 'type' is {_short(declared)}: this topic carries {event_type!r} events",
            "type",
        )

    event_id = _check_id(obj, "event_id")
    ts = _check_number(obj, "ts", low=0.0)
    user_id = _check_id(obj, "user_id", required=event_type != "item") or ""
    # An impression names its items in ``items``; its item_id is optional (default: the first).
    item_id = _check_id(obj, "item_id", required=event_type not in ("user", "impression")) or ""

    if event_type == "dwell":
        _check_number(obj, "seconds", low=0.0, high=MAX_DWELL_SECONDS)
    elif event_type == "skip":
        _check_number(obj, "after_seconds", low=0.0)
    elif event_type == "impression":
        shown = _check_str_list(obj, "items", MAX_IMPRESSION_ITEMS, min_len=1)
        own_rec_id = _check_id(obj, "rec_id", required=False)
        item_id = item_id or shown[0]
    elif event_type == "purchase":
        # Revenue is counted per currency: a value without its currency means nothing.
        if obj.get("value") is not None:
            _check_number(obj, "value", low=0.0, high=MAX_PURCHASE_VALUE)
        _check_currency(obj, required=obj.get("value") is not None)
    elif event_type == "user":
        attrs = _require(obj, "attributes")
        if not isinstance(attrs, dict) or len(attrs) > MAX_ATTRIBUTES:
            raise InvalidEvent(
                Reason.WRONG_TYPE,
                f"field 'attributes' is {_short(attrs)}: must be an object of at most {MAX_ATTRIBUTES} string pairs",
                "attributes",
            )
        for key, value in attrs.items():
            if not isinstance(value, str) or len(key) > MAX_ID_LENGTH or len(value) > MAX_ID_LENGTH:
                raise InvalidEvent(
                    Reason.WRONG_TYPE,
                    f"field 'attributes.{key}' is {_short(value)}: must be a string of at most {MAX_ID_LENGTH} characters",
                    "attributes",
                )
    elif event_type == "item":
        _check_str_list(obj, "categories", MAX_CATEGORIES)
        # Epoch seconds; negative for items made before 1970 (old films, books).
        _check_number(obj, "created_at")
        features = obj.get("features")
        if features is not None and not isinstance(features, dict):
            raise InvalidEvent(
                Reason.WRONG_TYPE, f"field 'features' is {_short(features)}: must be an object", "features"
            )

    _check_context(obj, event_type, own_rec_id if event_type == "impression" else None)
    return Event(type=event_type, event_id=event_id, user_id=user_id, item_id=item_id, ts=ts, raw=obj)


def make_event(event_type: str, *, event_id: str, user_id: str = "", item_id: str = "", ts: float, **extra: Any) -> dict[str, Any]:
    """Build a contract-v1 payload (a dict ready for :func:`encode`), validated.

    >>> make_event("skip", event_id="e9", user_id="u", item_id="i", ts=10.0, after_seconds=2.5)["after_seconds"]
    2.5
    """
    payload: dict[str, Any] = {"event_id": event_id, "ts": float(ts), "schema": SCHEMA_VERSION}
    if user_id:
        payload["user_id"] = user_id
    if item_id:
        payload["item_id"] = item_id
    payload.update(extra)
    validate_event(event_type, payload)
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    """Serialise a payload to the wire form: compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class RecRequest:
    """A request on the rec-requests topic (key = user_id): answer with the user's top-k."""

    request_id: str
    user_id: str
    k: int


def validate_rec_request(data: bytes | str | dict[str, Any]) -> RecRequest:
    """Validate ``{"schema": "v1", "request_id": str, "user_id": str, "k": int (optional, 1..100)}``.

    >>> validate_rec_request(b'{"schema": "v1", "request_id": "r1", "user_id": "u1", "k": 3}')
    RecRequest(request_id='r1', user_id='u1', k=3)
    """
    obj, request_id, user_id = _request(data)
    k = obj.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidEvent(Reason.WRONG_TYPE, f"field 'k' is {_short(k)}: must be an integer", "k")
    if not 1 <= k <= MAX_REQUEST_K:
        raise InvalidEvent(Reason.OUT_OF_RANGE, f"field 'k' is {k}: must be >= 1 and <= {MAX_REQUEST_K}", "k")
    return RecRequest(request_id, user_id, k)


@dataclass(frozen=True)
class ErasureRequest:
    """An erasure request on the user-erasures topic (key = user_id; stream/erasure.py)."""

    request_id: str
    user_id: str
    ts: float


def validate_erasure_request(data: bytes | str | dict[str, Any]) -> ErasureRequest:
    """Validate ``{"schema": "v1", "request_id": str, "user_id": str, "ts": number >= 0}``.

    >>> validate_erasure_request(b'{"schema": "v1", "request_id": "r1", "user_id": "u1", "ts": 10}')
    ErasureRequest(request_id='r1', user_id='u1', ts=10.0)
    """
    obj, request_id, user_id = _request(data)
    return ErasureRequest(request_id, user_id, _check_number(obj, "ts", low=0))

