"""The batch validator's fast path: interaction events decoded and checked in C (msgspec).

:func:`decode_event` turns one message of an interaction topic into the
:class:`~stream.contract.Event` that :func:`stream.contract.validate_event` would return, in a
fraction of the time json.loads alone takes (docs/PERFORMANCE.md), without building the
message's dict; or it answers None, and the message goes the per-record way
(:func:`validate_event`, which gives a rejected message its reason). The contract's rules are
the types below: a message msgspec decodes into one is a message validate_event accepts, with
the same fields (tests/unit/engine/test_decode_differential.py holds the two to that).

Left to the per-record way, because there msgspec and Python's json part:

- a message longer than ``sys.get_int_max_str_digits()`` bytes (4300): json refuses integers
  of more digits, msgspec does not (and the 64 KiB size limit lies beyond);
- a message longer than 640 bytes with more than :data:`MAX_DEPTH` brackets: json's nesting
  limit is the interpreter's recursion limit, so it depends on the stack json.loads runs on;
- bytes that are not ASCII and not UTF-8: msgspec does not check the UTF-8 of values it skips;
- an integer ``after_seconds`` of 2**63 or more: msgspec bounds integers within int64 only;
- a field repeated with a bad value first: msgspec checks each, json keeps the last;
- whatever msgspec refuses: malformed JSON, NaN and Infinity, a missing, null, mistyped or
  out-of-range field, a lone surrogate escape, a ``type`` of another topic... and what a
  type's ``__post_init__`` refuses (the rules between fields: an impression's two ``rec_id``,
  a purchase's ``value`` without ``currency``).

Examples
--------
>>> ev = decode_event("dwell", b'{"event_id": "e", "user_id": "u", "item_id": "i", "ts": 5, "schema": "v1", "seconds": 12}')
>>> ev.ts, ev.seconds, ev.raw["seconds"]
(5.0, 12, 12)
>>> decode_event("dwell", b'{"event_id": "e", "user_id": "u", "item_id": "i", "ts": 5, "schema": "v1", "seconds": NaN}') is None
True
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal, Optional, Union

import msgspec

from stream.contract import (
    MAX_DWELL_SECONDS,
    MAX_ID_LENGTH,
    MAX_IMPRESSION_ITEMS,
    MAX_MESSAGE_BYTES,
    MAX_PURCHASE_VALUE,
    SCHEMA_VERSION,
    Event,
)

__all__ = ["decode_event", "MAX_DEPTH"]

#: Nesting the fast path accepts: a message longer than 2 * MAX_DEPTH bytes with more brackets
#: than this ([ and {, strings' included) goes the per-record way.
MAX_DEPTH = 320
# A message this short can neither nest deeper than MAX_DEPTH nor hold an integer longer than
# sys.get_int_max_str_digits() (at least 640, or 0: no limit): it needs neither check.
_SHORT = 2 * MAX_DEPTH

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
# A float field takes JSON integers too, rounded as Python's float() rounds them; msgspec refuses
# numbers that overflow a float (1e400), which json reads as inf: so a float here is finite.
_Ts = Annotated[float, msgspec.Meta(ge=0.0)]
# A JSON integer stays an int and a JSON float a float, as json.loads keeps them in ``raw``.
_DwellSeconds = Union[Annotated[int, msgspec.Meta(ge=0, le=int(MAX_DWELL_SECONDS))],
                      Annotated[float, msgspec.Meta(ge=0.0, le=MAX_DWELL_SECONDS)]]
_AfterSeconds = Union[Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)],  # finite as a float, too
                      Annotated[float, msgspec.Meta(ge=0.0)]]
_Items = Annotated[list[_Id], msgspec.Meta(min_length=1, max_length=MAX_IMPRESSION_ITEMS)]
# An int field refuses JSON floats (1.0) and booleans, as the contract does.
_Position = Annotated[int, msgspec.Meta(ge=0, le=MAX_IMPRESSION_ITEMS - 1)]
# ``value`` is read as a float (Event.value is one either way); a JSON integer is rounded as float() rounds it.
_Value = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_PURCHASE_VALUE)]
_Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")]  # \Z: "$" would let "USD\n" through


class _Context(msgspec.Struct, gc=False):
    """``context``: its ``rec_id`` and ``position`` checked, other fields skipped (not built)."""

    rec_id: Optional[_Id] = None
    position: Optional[_Position] = None


class _Interaction(msgspec.Struct, kw_only=True, gc=False):
    """The fields every interaction event has; unknown ones are skipped (and kept in ``raw``).

    The event keeps it as what its properties read (``Event.from_message``'s ``known``):
    ``seconds``, ``after_seconds`` and ``items``, as ``raw.get`` gives them. Each type checks
    its own; the others are taken as they come (a click may carry a ``seconds`` of any kind),
    so the worker, which reads every event's ``seconds``, never decodes ``raw``. ``rec_id``
    and ``position`` are the properties of that name; a purchase adds ``value`` and ``currency``.
    """

    event_id: _Id
    user_id: _Id
    ts: _Ts
    schema: Literal[SCHEMA_VERSION]  # type: ignore[valid-type]
    context: Optional[_Context] = None
    seconds: Any = None
    after_seconds: Any = None
    items: Any = ()  # list(raw.get("items", ())): () when absent; a null stays None

    @property
    def rec_id(self) -> str | None:
        context = self.context
        return None if context is None else context.rec_id

    @property
    def position(self) -> int | None:
        context = self.context
        return None if context is None else context.position


class _Click(_Interaction, kw_only=True, gc=False):
    item_id: _Id
    type: Optional[Literal["click"]] = None


class _Dwell(_Interaction, kw_only=True, gc=False):
    item_id: _Id
    seconds: _DwellSeconds
    type: Optional[Literal["dwell"]] = None


class _Skip(_Interaction, kw_only=True, gc=False):
    item_id: _Id
    after_seconds: _AfterSeconds
    type: Optional[Literal["skip"]] = None


class _Impression(_Interaction, kw_only=True, gc=False):
    items: _Items
    own_rec_id: Optional[_Id] = msgspec.field(default=None, name="rec_id")  # or context.rec_id
    item_id: Optional[_Id] = None  # default: the first of items
    type: Optional[Literal["impression"]] = None

    def __post_init__(self) -> None:
        # A ValueError here is msgspec's ValidationError: validate_event gives the reason.
        context = self.context
        in_context = None if context is None else context.rec_id
        if (in_context is None and self.own_rec_id is None
                or in_context is not None and self.own_rec_id is not None and in_context != self.own_rec_id):
            raise ValueError("rec_id: missing, or not context.rec_id")

    @property
    def rec_id(self) -> str | None:
        context = self.context
        in_context = None if context is None else context.rec_id
        return self.own_rec_id if in_context is None else in_context


class _Purchase(_Interaction, kw_only=True, gc=False):
    item_id: _Id
    value: Optional[_Value] = None
    currency: Optional[_Currency] = None
    type: Optional[Literal["purchase"]] = None

    def __post_init__(self) -> None:
        if self.value is not None and self.currency is None:
            raise ValueError("currency: required with a value")


_DECODERS = {
    "click": msgspec.json.Decoder(_Click),
    "dwell": msgspec.json.Decoder(_Dwell),
    "skip": msgspec.json.Decoder(_Skip),
    "impression": msgspec.json.Decoder(_Impression),
    "purchase": msgspec.json.Decoder(_Purchase),
}


def decode_event(event_type: str | None, message: Any) -> Event | None:
    """The event of ``message``, if the fast path accepts it; None: ask validate_event.

    Parameters
    ----------
    event_type
        The type the message's topic carries (None: no known type).
    message
        The record's value: bytes (anything else, a tombstone's None included, is not decoded).

    Returns
    -------
    Event or None
        What :func:`stream.contract.validate_event` returns for ``message``; None when the fast
        path does not decide (the message may still be valid).
    """
    decoder = _DECODERS.get(event_type)  # type: ignore[arg-type]
    if decoder is None or type(message) is not bytes:
        return None
    if len(message) > _SHORT and (len(message) > _max_bytes()
                                  or message.count(b"[") + message.count(b"{") > MAX_DEPTH):
        return None
    if not message.isascii():
        try:
            message.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        fields = decoder.decode(message)
    except (msgspec.MsgspecError, RecursionError):
        return None
    item_id = fields.item_id
    if item_id is None:  # an impression without one: its first item
        item_id = fields.items[0]
    return Event.from_message(event_type, fields.event_id, fields.user_id, item_id, fields.ts, message, fields)


def _max_bytes() -> int:
    # read each time: the limit is a setting of the interpreter (sys.set_int_max_str_digits)
    return min(sys.get_int_max_str_digits() or MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES)
