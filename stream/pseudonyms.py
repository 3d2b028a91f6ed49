"""Pseudonymous ids: user ids and event ids replaced by a keyed hash before they leave the app.

With STREAMREC_ID_KEY set, the producer SDK (and the CLI, simulator and replay that use it) and
the consumer SDK pass every user id and event id through :class:`Pseudonyms`; Kafka, Redis and
the worker's logs then only ever hold the pseudonyms. The worker does not need the key.

The scheme, version 1:

    user id   ->  "p1_" + hex(HMAC-SHA256(key, b"user\\x00" + utf8(id)))[:32]
    event id  ->  "e1_" + hex(HMAC-SHA256(key, b"event\\x00" + utf8(id)))[:32]

* Keyed, so nobody without the key can hash candidate ids (MovieLens' 1..943, e-mail
  addresses) and match them; the key stays with the apps that produce and look up.
* Truncated to 128 bits (32 hex characters). Two ids collide with probability about
  n² / 2¹²⁹ among n ids: 1.5e-21 for a billion users, 1.5e-15 for a trillion event ids, far
  below any hardware error rate. 35 characters fit the contract's 128.
* A tag per kind (``user``, ``event``) keeps a user id and an event id with the same text apart.
* The prefix names the scheme: a later one (another hash, another length) gets ``p2_``.
* A value that already has the form (``p1_`` and 32 lower-case hex characters) is passed
  through, so an id read back from a recommendation message can be used again as is.
  Raw ids of that very form are therefore not hashed; do not use such raw ids.
* A new key makes every user a new user (their pseudonyms change): keep the key.

Only ``user_id`` and ``event_id`` are replaced. Other free-form fields the app fills in
(``context.session_id``, profile attribute values, unknown extra fields) are sent as given:
keep user ids out of them. Events written to Kafka by other clients are the app's duty:
hash their ids with :func:`pseudonym` and the same key (or this module's :class:`Pseudonyms`).

Examples
--------
>>> p = Pseudonyms(b"0123456789abcdef-example-key")
>>> p.user("alice")
'p1_5916dfa660bcf41bcddff7b4e7eee9d7'
>>> p.user(p.user("alice")) == p.user("alice")
True
>>> p.event("ml100k-196-242-click").startswith("e1_")
True
>>> Pseudonyms(None).user("alice")
'alice'
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

__all__ = ["Pseudonyms", "pseudonym", "is_pseudonym", "USER_PREFIX", "EVENT_PREFIX", "HEX_CHARS"]

USER_PREFIX = "p1_"
EVENT_PREFIX = "e1_"
HEX_CHARS = 32
_KINDS = {"user": USER_PREFIX, "event": EVENT_PREFIX}
_FORM = {kind: re.compile(re.escape(prefix) + f"[0-9a-f]{{{HEX_CHARS}}}") for kind, prefix in _KINDS.items()}


def is_pseudonym(value: str, kind: str = "user") -> bool:
    """Whether ``value`` has the form of a ``kind`` pseudonym (``user`` or ``event``).

    >>> is_pseudonym("p1_" + "0" * 32), is_pseudonym("alice"), is_pseudonym("e1_" + "a" * 32, "event")
    (True, False, True)
    """
    return _FORM[kind].fullmatch(value) is not None


def pseudonym(raw: str, key: bytes, kind: str = "user") -> str:
    """The pseudonym of ``raw`` under ``key``; a value that is one already is returned as is.

    >>> pseudonym("alice", b"0123456789abcdef-example-key")
    'p1_5916dfa660bcf41bcddff7b4e7eee9d7'
    """
    if kind not in _KINDS:
        raise ValueError(f"pseudonym kind {kind!r} is unknown: must be one of {', '.join(_KINDS)}")
    if not key:
        raise ValueError("pseudonym: the key is empty (set STREAMREC_ID_KEY)")
    if not raw:
        raise ValueError(f"pseudonym: the {kind} id is empty; an empty id has no pseudonym")
    if is_pseudonym(raw, kind):
        return raw
    digest = hmac.new(key, kind.encode() + b"\x00" + raw.encode("utf-8"), hashlib.sha256).hexdigest()
    return _KINDS[kind] + digest[:HEX_CHARS]


class Pseudonyms:
    """Replaces user ids and event ids when a key is given, and passes them through otherwise.

    Parameters
    ----------
    key
        The secret key (STREAMREC_ID_KEY as bytes); None or empty: ids stay as they are.
    """

    def __init__(self, key: bytes | None):
        self.key = key or None

    @classmethod
    def from_settings(cls, settings) -> "Pseudonyms":
        return cls(settings.id_key.get_secret_value().encode() or None)

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def user(self, user_id: str) -> str:
        """The id under which ``user_id`` is known to Kafka, Redis and the worker."""
        return pseudonym(user_id, self.key, "user") if self.key else user_id

    def event(self, event_id: str) -> str:
        return pseudonym(event_id, self.key, "event") if self.key else event_id

    def payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A copy of an event or request payload with its ``user_id`` and ``event_id`` replaced
        (the same dict when there is no key). Values that are not strings, and empty ones, are
        left for the contract's validation to reject.

        >>> Pseudonyms(b"0123456789abcdef-example-key").payload({"event_id": "e1", "user_id": "alice"})["user_id"]
        'p1_5916dfa660bcf41bcddff7b4e7eee9d7'
        """
        if not self.key:
            return payload
        out = dict(payload)
        for field, kind in (("user_id", "user"), ("event_id", "event")):
            value = out.get(field)
            if isinstance(value, str) and value:
                out[field] = pseudonym(value, self.key, kind)
        return out
