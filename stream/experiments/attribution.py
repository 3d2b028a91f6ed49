"""Attribution: the events that name a served list (``context.rec_id``, ``position``) counted against it.

When a list is served (pushed, or answered to a request or over HTTP) its record is kept for the
join window (STREAMREC_ATTRIBUTION_WINDOW_SECONDS) under its ``rec_id``: the user's token, the
segment, the experiment and variant it was served under, its length. An event that names the list
within the window counts against it:

* the list is **shown** once (by its impression, or by the first event that proves it was shown);
* a **click** counts at its position (labelled as the list's 1-based ``rank``: ``context.position``
  is 0-based), and the list as **clicked** once; **dwell** seconds,
  **skips** and **purchases** (with their value, per currency) add up, and a purchase makes the
  list **converted** once;
* for users in an experiment the same numbers add up per user (the unit of analysis:
  :mod:`stream.experiments.stats`), in the variant the list was served under.

An event is counted once, however often it arrives: the list's record keeps its events' tokens
(at most :data:`MAX_EVENTS`), and a batch's counts are stored all or nothing (``attribute.lua``)
after a check that nothing changed since they were loaded. So a batch applied again after a crash
adds nothing twice, and the state is bounded: one record per list served within the window.
Events that match no list are counted by reason (``streamrec_attribution_unmatched_total``).

Examples
--------
>>> import asyncio
>>> from stream.contract import make_event, validate_event
>>> from stream.experiments.state import MemoryExperiments
>>> att = Attribution(MemoryExperiments(), window=3600)
>>> msg = {"user_id": "u1", "rec_id": "r1", "segment": "all", "experiment": None, "variant": None,
...        "items": [{"item_id": "a"}, {"item_id": "b"}]}
>>> asyncio.run(att.record([msg]))
>>> click = validate_event("click", make_event("click", event_id="e1", user_id="u1", item_id="b", ts=5.0,
...                                          context={"rec_id": "r1", "position": 1}))
>>> out = asyncio.run(att.attribute([click, click]))
>>> out.shown, out.clicked, dict(out.clicks)
(1, 1, {('all', 'none', 'none', '2'): 1})
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import msgspec

from stream.experiments.state import ExperimentState, Member

__all__ = ["Attribution", "Attributed", "UserCounters", "ListRecord", "MAX_EVENTS", "new_counters"]

log = logging.getLogger(__name__)

#: Events remembered per list (to count each once); later ones are not attributed (list_full).
MAX_EVENTS = 64
_SHOWN, _CLICKED, _CONVERTED = 1, 2, 4
NONE = "none"


class ListRecord(msgspec.Struct, omit_defaults=True):
    """A served list as attribution keeps it (JSON, short names: one per list in the window)."""

    t: str  # the user's token
    s: str  # segment
    n: int  # length
    e: str = ""  # experiment ("" outside)
    v: str = ""  # variant
    f: int = 0  # flags: shown, clicked, converted
    ev: list[str] = msgspec.field(default_factory=list)  # tokens of the events counted


class UserCounters(msgspec.Struct, omit_defaults=True):
    """One user's counts in an experiment's variant (JSON)."""

    at: float = 0.0  # assigned (wall clock)
    shown: int = 0
    clicked: int = 0
    clicks: int = 0
    purchases: int = 0
    converted: int = 0
    revenue: dict[str, float] = msgspec.field(default_factory=dict)
    dwell_s: float = 0.0
    dwell_n: int = 0
    skips: int = 0


_enc = msgspec.json.Encoder()
_dec_list = msgspec.json.Decoder(ListRecord)
_dec_user = msgspec.json.Decoder(UserCounters)


def new_counters(at: float) -> bytes:
    """A new assignment's counters."""
    return _enc.encode(UserCounters(at=at))


def decode_counters(raw: bytes) -> UserCounters:
    return _dec_user.decode(raw)


@dataclass
class Attributed:
    """What one call to :meth:`Attribution.attribute` counted, by (segment, experiment, variant);
    the totals (``shown``, ``clicked``, ...) are summed over the labels."""

    by_label: Counter = field(default_factory=Counter)  # (kind, labels...) -> amount
    clicks: Counter = field(default_factory=Counter)  # (segment, experiment, variant, position) -> clicks
    revenue: Counter = field(default_factory=Counter)  # (segment, experiment, variant, currency) -> value
    unmatched: Counter = field(default_factory=Counter)  # reason -> events
    repeats: int = 0  # events counted before (a redelivery)
    attempts: int = 1

    def total(self, kind: str) -> float:
        """A kind of count (``shown``, ``clicked``, ``converted``, ``purchases``, ``skips``,
        ``dwell_n``, ``dwell_s``) over every label."""
        return sum(amount for (k, *_), amount in self.by_label.items() if k == kind)

    shown = property(lambda self: int(self.total("shown")))
    clicked = property(lambda self: int(self.total("clicked")))
    converted = property(lambda self: int(self.total("converted")))
    purchases = property(lambda self: int(self.total("purchases")))
    skips = property(lambda self: int(self.total("skips")))
    dwell_events = property(lambda self: int(self.total("dwell_n")))

    def observe(self, metrics) -> None:
        """Add these counts to the Prometheus metrics (:mod:`stream.metrics`)."""
        m = metrics
        series = {"shown": m.lists_shown_total, "clicked": m.lists_clicked_total, "converted": m.lists_converted_total,
                  "purchases": m.list_purchases_total, "dwell_s": m.list_dwell_seconds_total,
                  "dwell_n": m.list_dwell_events_total, "skips": m.list_skips_total}
        for (kind, *labels), amount in self.by_label.items():
            series[kind].labels(*labels).inc(amount)
        for labels, n in self.clicks.items():
            m.list_clicks_total.labels(*labels).inc(n)
        for labels, value in self.revenue.items():
            m.list_revenue_total.labels(*labels).inc(value)
        for reason, n in self.unmatched.items():
            m.attribution_unmatched_total.labels(reason).inc(n)


class Attribution:
    """Keeps served lists' records and counts events against them (see the module docstring).

    Parameters
    ----------
    state
        :class:`~stream.experiments.state.ExperimentState`.
    window
        Seconds a served list can be attributed to (its record's lifetime).
    max_position_label
        Clicks past this rank are labelled ``other`` (bounded series).
    """

    MAX_ATTEMPTS = 20

    def __init__(self, state: ExperimentState, *, window: int, max_position_label: int = 20) -> None:
        self.state = state
        self.window = int(window)
        self.max_position_label = max_position_label

    @classmethod
    def from_settings(cls, state: ExperimentState, settings) -> "Attribution | None":
        """The worker's: a join window of STREAMREC_ATTRIBUTION_WINDOW_SECONDS (None when 0: off)."""
        window = settings.attribution_window_seconds
        return cls(state, window=window) if window else None

    async def record(self, messages: list[dict]) -> None:
        """Keep these served lists' records (list messages: :func:`stream.engine.push.message`)."""
        if not messages:
            return
        tokens = await self.state.tokens()
        await self.state.save_lists({m["rec_id"]: _enc.encode(ListRecord(
            tokens.user(m["user_id"]), m["segment"], len(m["items"]), m.get("experiment") or "",
            m.get("variant") or "")) for m in messages}, self.window)

    async def attribute(self, events: list) -> Attributed:
        """Count ``events`` (valid events in the order applied; those without a rec_id are passed
        over) against the lists they name; stored all or nothing, each event once."""
        named = [ev for ev in events if ev.rec_id is not None]
        if not named:
            return Attributed()
        tokens = await self.state.tokens()
        event_tokens = tokens.events([ev.event_id for ev in named])
        user_tokens = {ev.user_id: tokens.user(ev.user_id) for ev in named}
        rec_ids = sorted({ev.rec_id for ev in named})
        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            raw_lists, _ = await self.state.load(rec_ids, [])
            lists = {r: None if raw is None else _dec_list.decode(raw) for r, raw in zip(rec_ids, raw_lists)}
            members = sorted({(rec.e, rec.v, rec.t) for rec in lists.values() if rec is not None and rec.e})
            _, raw_users = await self.state.load([], members)
            users = {m: None if raw is None else _dec_user.decode(raw) for m, raw in zip(members, raw_users)}
            out = self._count(named, event_tokens, user_tokens, lists, users)
            changed_lists = [(r, raw, _enc.encode(lists[r])) for r, raw in zip(rec_ids, raw_lists)
                             if lists[r] is not None and r in out.touched]
            changed_users = [(m, raw, _enc.encode(users[m])) for m, raw in zip(members, raw_users)
                             if users[m] is not None and m in out.touched_users]
            if await self.state.commit(changed_lists, changed_users):
                out.result.attempts = attempt
                return out.result
            log.info("attribution of %d events computed again (attempt %d): a list or user changed meanwhile",
                     len(named), attempt + 1)
        raise RuntimeError(f"attribution: {self.MAX_ATTEMPTS} conflicts in a row")

    def _count(self, events, event_tokens, user_tokens, lists: dict[str, ListRecord | None],
               users: dict[Member, UserCounters | None]) -> "_Counting":
        c = _Counting()
        res = c.result
        for ev, etok in zip(events, event_tokens):
            rec = lists.get(ev.rec_id)
            if rec is None:
                res.unmatched["unknown_list"] += 1
                continue
            if rec.t != user_tokens[ev.user_id]:
                res.unmatched["other_user"] += 1
                continue
            if etok in rec.ev:
                res.repeats += 1
                continue
            pos = ev.position  # 0-based (the contract's context.position)
            if pos is not None and pos >= rec.n:
                res.unmatched["bad_position"] += 1
                continue
            if len(rec.ev) >= MAX_EVENTS:
                res.unmatched["list_full"] += 1
                continue
            rec.ev.append(etok)
            c.touched.add(ev.rec_id)
            labels = (rec.s, rec.e or NONE, rec.v or NONE)
            member = (rec.e, rec.v, rec.t) if rec.e else None
            user = users.get(member) if member is not None else None
            if user is not None:
                c.touched_users.add(member)

            _once(res, labels, user, rec, _SHOWN, "shown")
            if ev.type == "click":
                _once(res, labels, user, rec, _CLICKED, "clicked")
                where = "other" if pos is None or pos >= self.max_position_label else str(pos + 1)
                res.clicks[(*labels, where)] += 1
                if user is not None:
                    user.clicks += 1
            elif ev.type == "dwell":
                _add(res, labels, user, "dwell_s", float(ev.seconds or 0.0))
                _add(res, labels, user, "dwell_n")
            elif ev.type == "skip":
                _add(res, labels, user, "skips")
            elif ev.type == "purchase":
                _add(res, labels, user, "purchases")
                _once(res, labels, user, rec, _CONVERTED, "converted")
                if ev.value is not None and ev.currency:
                    res.revenue[(*labels, ev.currency)] += float(ev.value)
                    if user is not None:
                        user.revenue[ev.currency] = user.revenue.get(ev.currency, 0.0) + float(ev.value)
        return c


def _add(res: Attributed, labels: tuple, user: UserCounters | None, kind: str, amount: float = 1) -> None:
    """Count ``amount`` of ``kind`` for the list's labels, and in its user's counters (if any)."""
    res.by_label[(kind, *labels)] += amount
    if user is not None:
        setattr(user, kind, getattr(user, kind) + amount)


def _once(res: Attributed, labels: tuple, user: UserCounters | None, rec: ListRecord, flag: int, kind: str) -> None:
    """A list is shown, clicked, converted once: count ``kind`` the first time only."""
    if not rec.f & flag:
        rec.f |= flag
        _add(res, labels, user, kind)


@dataclass
class _Counting:
    result: Attributed = field(default_factory=Attributed)
    touched: set = field(default_factory=set)
    touched_users: set = field(default_factory=set)
