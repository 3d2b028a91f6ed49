"""Segment assignment from profile attributes (the users topic), with stable, readable ids.

A segment id names the attributes it comes from, ``name:value`` joined by ``/``, e.g.
``age:25-34/gender:F``. Segments are few (at most ``max_segments``, 32 by default): a
numeric ``age`` is bucketed into bands, values held by fewer than ``min_users`` users of an
attribute fold into ``other``, and when the combinations still outnumber the cap, the
largest ``max_segments - 1`` keep their id and the rest share ``other``.

:class:`Assignments` remembers each user's segment and counts users who move (a profile
that changes, a behaviour cluster that changes: see :mod:`stream.models.behaviour`).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Sequence

__all__ = ["Assignments", "ProfileSegmenter", "age_band", "profile_segment", "OTHER"]

OTHER = "other"


def age_band(age: str | int | float, edges: Sequence[int] = (25, 35, 50)) -> str:
    """The band of an age given the bands' lower edges; a non-numeric value is returned as is.

    Examples
    --------
    >>> [age_band(a) for a in (19, 25, "34", 49, 73, "35-44")]
    ['<25', '25-34', '25-34', '35-49', '50+', '35-44']
    """
    try:
        years = float(age)
    except (TypeError, ValueError):
        return str(age)
    if years < edges[0]:
        return f"<{edges[0]}"
    for lo, hi in zip(edges, edges[1:]):
        if years < hi:
            return f"{lo}-{hi - 1}"
    return f"{edges[-1]}+"


class Assignments:
    """Each user's current segment, and the moves between segments (counted per (from, to)).

    Examples
    --------
    >>> a = Assignments()
    >>> a.set("ann", "age:<25"), a.set("ann", "age:<25"), a.set("ann", "age:25-34")
    (False, False, True)
    >>> a.get("ann"), a.n_moves, dict(a.moves)
    ('age:25-34', 1, {('age:<25', 'age:25-34'): 1})
    """

    def __init__(self) -> None:
        self.users: dict[str, str] = {}
        self.moves: Counter = Counter()

    @property
    def n_moves(self) -> int:
        return sum(self.moves.values())

    def get(self, user_id: str, default: str | None = None) -> str | None:
        return self.users.get(user_id, default)

    def set(self, user_id: str, segment: str) -> bool:
        """Assign; returns True when the user moved from another segment (counted)."""
        before = self.users.get(user_id)
        self.users[user_id] = segment
        if before is not None and before != segment:
            self.moves[(before, segment)] += 1
            return True
        return False

    def sizes(self) -> Counter:
        """Users per segment."""
        return Counter(self.users.values())


class ProfileSegmenter:
    """A profile's segment from chosen attributes, folded so that segments stay few and not tiny.

    Folding, learned by :meth:`fit` from a population of profiles: an attribute value held
    by fewer than ``min_users`` users reads ``other``; then a combination with fewer than
    ``min_users`` users gives up its attributes from the last one (``.../occupation:other``,
    then ``.../gender:other/occupation:other``, ...) until it lands in a combination that is
    kept, or in ``other``. At most ``max_segments`` ids remain (the largest). A profile is
    assigned to its first kept candidate in that order, so profiles arriving later (the
    users topic) land where :meth:`fit` put their like.

    Parameters
    ----------
    attributes
        Profile attributes forming the segment, most important first (e.g. ``("age", "gender")``).
        An absent attribute reads as ``unknown``.
    age_edges
        Lower edges of the age bands (a numeric ``age`` attribute is bucketed).
    min_users
        Users an attribute value, and a segment, needs in :meth:`fit`.
    max_segments
        At most this many segment ids (``other`` included).
    keep
        Per attribute, the values kept (others read ``other``); :meth:`fit` sets it.
    combinations
        The segment ids kept besides ``other``; :meth:`fit` sets it, ``None`` keeps every combination.

    Examples
    --------
    >>> profiles = ([{"age": "23", "gender": "F", "occupation": "student"}] * 3
    ...             + [{"age": "41", "gender": "M", "occupation": "engineer"}] * 2
    ...             + [{"age": "45", "gender": "M", "occupation": "lawyer"},
    ...                {"age": "38", "gender": "M", "occupation": "doctor"}])
    >>> seg = ProfileSegmenter(["age", "gender", "occupation"], min_users=2).fit(profiles)
    >>> for p in profiles[2:]:  # a lawyer and a doctor: rare occupations
    ...     print(seg.segment_of(p))
    age:<25/gender:F/occupation:student
    age:35-49/gender:M/occupation:engineer
    age:35-49/gender:M/occupation:engineer
    age:35-49/gender:M/occupation:other
    age:35-49/gender:M/occupation:other
    >>> seg.segment_of({"age": "61", "gender": "F", "occupation": "doctor"})
    'other'
    >>> seg.assign("u1", profiles[0]), seg.assign("u1", profiles[5]), seg.assignments.n_moves
    ('age:<25/gender:F/occupation:student', 'age:35-49/gender:M/occupation:other', 1)
    """

    def __init__(
        self,
        attributes: Sequence[str] = ("age", "gender", "occupation"),
        age_edges: Sequence[int] = (25, 35, 50),
        min_users: int = 20,
        max_segments: int = 32,
        keep: Mapping[str, Sequence[str]] | None = None,
        combinations: Sequence[str] | None = None,
    ) -> None:
        if not attributes:
            raise ValueError("ProfileSegmenter: attributes must name at least one profile attribute")
        if max_segments < 1:
            raise ValueError(f"ProfileSegmenter: max_segments must be >= 1, got {max_segments}")
        if not age_edges or list(age_edges) != sorted(set(age_edges)):
            raise ValueError(f"ProfileSegmenter: age_edges must be increasing, got {list(age_edges)}")
        self.attributes = attributes
        self.age_edges = age_edges
        self.min_users = min_users
        self.max_segments = max_segments
        self.keep = keep
        self.combinations = combinations
        self.assignments = Assignments()

    def _value(self, attributes: Mapping[str, str], name: str) -> str:
        value = attributes.get(name)
        if value is None or value == "":
            return "unknown"
        value = age_band(value, self.age_edges) if name == "age" else str(value)
        kept = (self.keep or {}).get(name)
        return value if kept is None or value in kept else OTHER

    def _candidates(self, attributes: Mapping[str, str]) -> list[str]:
        """The profile's combination, then with its last 1, 2, ... attributes folded into ``other``."""
        values = [self._value(attributes, name) for name in self.attributes]
        n = len(values)
        out = []
        for folded in range(n):
            parts = values[: n - folded] + [OTHER] * folded
            out.append("/".join(f"{name}:{v}" for name, v in zip(self.attributes, parts)))
        return out

    def segment_of(self, attributes: Mapping[str, str]) -> str:
        """The segment id of a profile (no state changes)."""
        candidates = self._candidates(attributes)
        if self.combinations is None:
            return candidates[0]
        kept = set(self.combinations)
        return next((c for c in candidates if c in kept), OTHER)

    def fit(self, profiles: Iterable[Mapping[str, str]]) -> "ProfileSegmenter":
        """Choose the kept values and segments from a population of profiles (offline)."""
        profiles = list(profiles)
        self.keep, self.combinations = None, None
        keep = {}
        for name in self.attributes:
            counts = Counter(self._value(p, name) for p in profiles)
            keep[name] = sorted(v for v, c in counts.items() if c >= self.min_users)
        self.keep = keep
        candidates = [self._candidates(p) for p in profiles]
        kept: set[str] = set()
        unsettled = list(range(len(profiles)))
        for level in range(len(self.attributes)):
            sizes = Counter(candidates[j][level] for j in unsettled)
            kept |= {c for c, size in sizes.items() if size >= self.min_users}
            unsettled = [j for j in unsettled if candidates[j][level] not in kept]
        # the cap: the largest segments by their final size (ties by id), ``other`` takes the rest
        self.combinations = sorted(kept)
        sizes = Counter(self.segment_of(p) for p in profiles)
        if len(sizes) > self.max_segments:
            ranked = sorted((c for c in sizes if c != OTHER), key=lambda c: (-sizes[c], c))
            self.combinations = sorted(ranked[: self.max_segments - 1])
        return self

    def assign(self, user_id: str, attributes: Mapping[str, str]) -> str:
        """Assign a user from their (new) profile; a changed segment counts as a move."""
        segment = self.segment_of(attributes)
        self.assignments.set(user_id, segment)
        return segment

    def get_params(self) -> dict:
        return {"attributes": list(self.attributes), "age_edges": list(self.age_edges), "min_users": self.min_users,
                "max_segments": self.max_segments, "keep": None if self.keep is None else dict(self.keep),
                "combinations": None if self.combinations is None else list(self.combinations)}


def profile_segment(attributes: Mapping[str, str], segmenter: ProfileSegmenter, default: str) -> str:
    """The segment a profile names: the segmenter's, or ``default`` when it has none of the attributes.

    >>> seg = ProfileSegmenter(["age", "plan"])
    >>> profile_segment({"plan": "pro", "age": "31", "country": "fr"}, seg, "all"), profile_segment({"country": "fr"}, seg, "all")
    ('age:25-34/plan:pro', 'all')
    """
    if not any(attributes.get(n) for n in segmenter.attributes):
        return default
    return segmenter.segment_of(attributes)
