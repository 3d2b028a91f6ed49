"""Seeded messages for the interaction topics: valid ones written many ways, and mutated ones.

A message is built as ordered (key, value) pairs, so that it can hold duplicate keys, and
written by :func:`write` with the writer's choices (spacing, ASCII escapes, escaped keys); a
:class:`Lit` is written as is (``NaN``, ``1E+2``, ``-0``, a 400-digit integer, a broken token).
:func:`messages` yields ``(event_type, value bytes, how)``; ``how`` names what was done.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

TYPES = ("click", "dwell", "skip", "impression", "purchase")
FLOAT_MAX_HALFWAY = 2**1024 - 2**970  # rounds to inf as a float: Python raises, msgspec does not


class Lit(str):
    """A JSON token written verbatim."""


class Obj(list):
    """A JSON object as ordered (key, value) pairs: it may repeat a key."""


_ID_CHARS = "abcxyz019-_:./ ABC"
_WIDE_CHARS = ["é", "ß", "中", "😀", "\u2028", "\x7f", "\x00", "\ud83d\ude00", '"', "\\", "\u200b", "\ufffd"]


def an_id(rng: random.Random, length: int | None = None) -> str:
    """An id of 1..128 characters (``length`` to choose), now and then beyond ASCII."""
    if length is None:
        length = rng.choice([1, 2, 7, 12, 30, 127, 128]) if rng.random() < 0.3 else rng.randint(1, 16)
    chars = list(_ID_CHARS) if rng.random() < 0.8 else list(_ID_CHARS) + _WIDE_CHARS
    text = ""
    while len(text) < length:
        char = rng.choice(chars)
        text += char if len(text) + len(char) <= length else "x"  # never half a surrogate pair
    return text


def a_number(rng: random.Random, low: float, high: float) -> Any:
    """A number in [low, high], as an int, a float or a literal of another spelling."""
    pick = rng.random()
    if pick < 0.35:
        return round(rng.uniform(low, high), rng.choice([0, 2, 3, 6]))
    if pick < 0.55:
        return rng.randint(int(low), int(high))
    if pick < 0.65:
        return rng.choice([low, high, int(low), int(high)])
    if pick < 0.8:  # long decimals: both decoders must round them to the same float
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(16, 24)))
        value = float(f"0.{digits}") * (high - low) + low
        text = repr(value) if rng.random() < 0.5 else f"{value:.{rng.randint(17, 25)}g}"
        return Lit(text if rng.random() < 0.7 else text.upper())
    value = rng.uniform(low, high)
    return Lit(rng.choice([f"{value:e}", f"{value:E}", f"{value * 10:.3f}e-1", "-0" if low <= 0 else str(int(high)),
                           "-0.0" if low <= 0 else f"{high}", f"{value:.0f}", f"{int(value)}.000"]))


def a_position(rng: random.Random) -> Any:
    """A list position (0..99), as an int or a literal of another spelling json reads as one."""
    return rng.choice([0, 1, 5, 99, rng.randint(0, 99), Lit("-0"), Lit("0"), Lit("42")])


def any_value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value (an unknown field's), now and then one json reads and msgspec refuses."""
    pick = rng.random()
    if depth > 2 or pick < 0.5:
        return rng.choice([None, True, False, 0, -7, 3.25, 1e300, "", "tv", an_id(rng), 2**70, -(2**64) - 1,
                           Lit("1e400"), Lit("-0"), Lit("1E-400"), Lit("NaN"), Lit("-Infinity"), "\ud800", 1.5e-7])
    if pick < 0.75:
        return [any_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return Obj((an_id(rng, rng.randint(1, 6)), any_value(rng, depth + 1)) for _ in range(rng.randint(0, 4)))


def valid_pairs(rng: random.Random, event_type: str) -> Obj:
    """A message the contract accepts, its fields in a random order."""
    pairs = [("event_id", an_id(rng)), ("user_id", an_id(rng)), ("ts", a_number(rng, 0, 2e9)), ("schema", "v1")]
    if event_type != "impression" or rng.random() < 0.4:
        pairs.append(("item_id", None if event_type == "impression" and rng.random() < 0.3 else an_id(rng)))
    if event_type == "dwell":
        pairs.append(("seconds", a_number(rng, 0, 86400)))
    elif event_type == "skip":
        pairs.append(("after_seconds", a_number(rng, 0, 1e6)))
    elif event_type == "impression":
        n = rng.choice([1, 2, 5, 20, 100]) if rng.random() < 0.5 else rng.randint(1, 10)
        pairs.append(("items", [an_id(rng) for _ in range(n)]))
    elif event_type == "purchase":
        if rng.random() < 0.7:
            pairs += [("value", a_number(rng, 0, 1e9)), ("currency", rng.choice(["EUR", "USD", "JPY", "XAU"]))]
        elif rng.random() < 0.5:  # a currency alone, or a null value
            pairs += [("currency", "GBP")] + ([("value", None)] if rng.random() < 0.5 else [])
    rec_id = an_id(rng)
    # Where the list is named: an impression needs it somewhere; other types' top-level rec_id is unknown.
    where = rng.choice(["top", "context", "both"] if event_type == "impression" else ["none", "context", "top"])
    if where in ("top", "both"):
        pairs.append(("rec_id", rec_id))
    if rng.random() < 0.5:
        pairs.append(("type", event_type if rng.random() < 0.8 else None))
    if where in ("context", "both") or rng.random() < 0.8:
        context = rng.choice([None, Obj(), Obj([("session_id", an_id(rng)), ("device", "tv"),
                                                ("position", rng.randint(0, 9))]),
                              Obj([("deep", any_value(rng))]),
                              Obj([("rec_id", rec_id), ("position", rng.choice([0, 1, 7, 99, None]))]),
                              Obj([("position", a_position(rng)), ("session_id", None), ("rec_id", rec_id)])])
        if where in ("context", "both"):  # the list is named here: the context must say so
            context = Obj([*(context or []), ("rec_id", rec_id)])
        pairs.append(("context", context))
    for _ in range(rng.choice([0, 0, 0, 1, 3])):
        pairs.append((rng.choice(["experiment", "rec", "Seconds", "TS", "attributes", "categories", "items",
                                  "seconds", "after_seconds", an_id(rng, 5)]), any_value(rng)))
    rng.shuffle(pairs)
    return Obj(pairs)


def write(value: Any, rng: random.Random, ascii_only: bool, sep: tuple[str, str]) -> str:
    """JSON text of ``value`` (Obj pairs in order, Lit verbatim), with the writer's choices."""
    if isinstance(value, Lit):
        return str(value)
    if isinstance(value, Obj):
        parts = []
        for key, item in value:
            text = json.dumps(key, ensure_ascii=ascii_only)
            if key and rng.random() < 0.03:  # an escaped key: "\u0074s" is "ts"
                text = '"\\u%04x%s' % (ord(key[0]), json.dumps(key[1:], ensure_ascii=ascii_only)[1:])
            parts.append(f"{text}{sep[1]}{write(item, rng, ascii_only, sep)}")
        return "{" + sep[0].join(parts) + "}"
    if isinstance(value, list):
        return "[" + sep[0].join(write(item, rng, ascii_only, sep) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def _set(pairs: Obj, key: str, value: Any) -> Obj:
    out = Obj((k, value if k == key else v) for k, v in pairs)
    return out if any(k == key for k, _ in pairs) else Obj([*out, (key, value)])


def _fields(event_type: str) -> list[str]:
    extra = {"dwell": ["seconds"], "skip": ["after_seconds"], "impression": ["items", "rec_id"],
             "purchase": ["value", "currency"]}.get(event_type, [])
    return ["event_id", "user_id", "item_id", "ts", "schema", "type", "context", "context.rec_id",
            "context.position", *extra]


def _bad_value(rng: random.Random, key: str) -> Any:
    """A value the contract may refuse for ``key``: wrong type, out of range, non-finite..."""
    numbers = [-1, -0.001, Lit("-1e-9"), 86400.0001, 86401, Lit("86400.000000000000001"), Lit("1e400"),
               Lit("NaN"), Lit("Infinity"), Lit("-Infinity"), Lit("1" + "0" * 400), Lit(str(FLOAT_MAX_HALFWAY)),
               Lit(str(2**1024)), 2**63, 2**63 + 1, 2**64, 1.7976931348623157e308, Lit("1.7976931348623158e308"),
               2**53 + 1, 9.5e18, 0, Lit("-0"), Lit("-0.0"), Lit("1" + "0" * 5000)]
    ids = ["", "x" * 129, "é" * 128, "é" * 129, "😀" * 128, "😀" * 129, "\ud800", "a\udc00b", 7, ["a"]]
    generic = [None, True, False, "", "1", [], Obj(), 0, 1.5, [1, 2], Obj([("a", 1)]), "v1", "click", "dwell",
               "skip", "impression", "CLICK", "v2", "V1", "user"]
    if key in ("ts", "seconds", "after_seconds", "context.position"):
        return rng.choice(numbers + generic + [100, 99, 1, Lit("1.0"), Lit("1e1"), -(2**63) - 1, Lit("-1")])
    if key == "value":
        return rng.choice(numbers + generic + [1e9, Lit("1000000000.0000001"), Lit("1e9"), 10**9 + 1,
                                               Lit("1000000000.00000001")])
    if key == "currency":
        return rng.choice(generic + ["usd", "US", "USDX", "US1", "ÉUR", "EUR\n", "E\u00dcR", " EUR", "EUR"])
    if key == "items":
        return rng.choice([[], [an_id(rng) for _ in range(101)], ["a", 3], ["a", ""], ["a", None], ["x" * 129],
                           ["é" * 128], "a", Obj(), [an_id(rng) for _ in range(100)]] + generic)
    return rng.choice(ids + generic)


def mutate(pairs: Obj, rng: random.Random, event_type: str) -> tuple[Obj | str | bytes, str]:
    """One change to a valid message: a field dropped, retyped, out of range, repeated..."""
    kind = rng.choice(["drop", "null", "bad", "bad", "bad", "duplicate", "extra", "not_object", "text", "bytes",
                       "bytes", "size", "deep"])
    key = rng.choice(_fields(event_type))
    if key.startswith("context.") and kind in ("drop", "null", "bad", "duplicate"):
        return _mutate_context(pairs, rng, key.split(".", 1)[1], kind), f"{kind} {key}"
    if kind == "drop":
        return Obj((k, v) for k, v in pairs if k != key), f"drop {key}"
    if kind == "null":
        return _set(pairs, key, None), f"null {key}"
    if kind == "bad":
        value = _bad_value(rng, key)
        return _set(pairs, key, value), f"bad {key}={str(value)[:20]!r}"
    if kind == "duplicate":  # json keeps the last of a repeated key
        bad, good = _bad_value(rng, key), dict(pairs).get(key, "v1")
        first, last = (bad, good) if rng.random() < 0.5 else (good, bad)
        return Obj([(key, first), *pairs, (key, last)]), f"duplicate {key}"
    if kind == "extra":
        return Obj([*pairs, (rng.choice(["x", "items", "seconds", "context2"]), any_value(rng))]), "extra"
    if kind == "not_object":
        return rng.choice([Lit("[1, 2]"), Lit('"click"'), Lit("3"), Lit("null"), Lit("true"), [pairs]]), "not_object"
    if kind == "deep":  # nesting near and past the interpreter's recursion limit
        depth = rng.choice([10, 100, 330, 700, 990, 1000, 3000])
        return Obj([*pairs, ("nest", Lit("[" * depth + "]" * depth))]), f"deep {depth}"
    if kind == "size":
        pad = rng.choice([4200, 4400, 30_000, 64 * 1024, 70_000])
        return Obj([*pairs, ("padding", "p" * pad)]), f"size {pad}"
    if kind == "text":  # a token json and msgspec may read differently
        token = rng.choice(['"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"', '"a\\/b"', '"\\a"', '"tab\tin"',
                            '"nl\nin"', "01", "1.", ".5", "+1", "1e", "tru", "nan", "[1,]", "{,}", '"\\u00"'])
        return Obj([*pairs, ("odd", Lit(token))]), f"text {token!r}"
    return pairs, "bytes"  # changed after writing (see _damage)


def _mutate_context(pairs: Obj, rng: random.Random, key: str, kind: str) -> Obj:
    """The message with its context's ``key`` dropped, nulled, bad or repeated (a context made if none)."""
    context = dict(pairs).get("context")
    context = Obj(context) if isinstance(context, Obj) else Obj()
    if kind == "drop":
        context = Obj((k, v) for k, v in context if k != key)
    elif kind == "null":
        context = _set(context, key, None)
    elif kind == "bad":
        context = _set(context, key, _bad_value(rng, f"context.{key}"))
    else:
        bad, good = _bad_value(rng, f"context.{key}"), dict(context).get(key, 3 if key == "position" else "r")
        first, last = (bad, good) if rng.random() < 0.5 else (good, bad)
        context = Obj([(key, first), *context, (key, last)])
    return _set(pairs, "context", context)


def _damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Byte-level damage: bad UTF-8, truncation, a BOM, trailing bytes, a flipped byte."""
    kind = rng.choice(["utf8", "utf8", "truncate", "bom", "trailing", "flip", "whitespace"])
    at = rng.randint(0, len(data))
    if kind == "utf8":
        bad = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf5\x80\x80\x80"])
        inside = [i for i in range(len(data)) if data[i:i + 1] == b'"']  # into a string, most often
        at = rng.choice(inside) + 1 if inside and rng.random() < 0.8 else at
        return data[:at] + bad + data[at:], f"utf8 {bad!r}"
    if kind == "truncate":
        return data[:at], f"truncate {at}"
    if kind == "bom":
        return b"\xef\xbb\xbf" + data, "bom"
    if kind == "trailing":
        return data + rng.choice([b" x", b"\x00", b"}", b" {}", b"\n"]), "trailing"
    if kind == "whitespace":
        return rng.choice([b" ", b"\n\t\r ", b"\x0c", b"\xc2\xa0"]) + data, "whitespace"
    flipped = bytes([data[at - 1] ^ (1 << rng.randint(0, 7))]) if at else b""
    return (data[:at - 1] + flipped + data[at:] if at else data), f"flip {at}"


def messages(seed: int, n: int, mutated_share: float = 0.5) -> Iterator[tuple[str, bytes, str]]:
    """``n`` messages ``(event_type, value, how)``: valid ones and, ``mutated_share`` of them, changed."""
    rng = random.Random(seed)
    for _ in range(n):
        event_type = rng.choice(TYPES)
        pairs: Any = valid_pairs(rng, event_type)
        how = "valid"
        if rng.random() < mutated_share:
            pairs, how = mutate(pairs, rng, event_type)
        sep = rng.choice([(",", ":"), (", ", ": "), (",\n  ", " : "), ("\t,", ":\r\n")])
        text = write(pairs, rng, ascii_only=rng.random() < 0.3, sep=sep)
        data = text.encode("utf-8", errors="surrogatepass")  # a lone surrogate: bytes that are not UTF-8
        if how == "bytes":
            data, how = _damage(data, rng)
        yield event_type, data, how
