"""Segment popularity as ranking reads it: the state's scores, kept a short while in the worker.

The segment re-ranker reads, for every candidate of a ranking, the candidate's popularity in the
user's segment (:meth:`stream.state.base.StateStore.segment_scores`). In Redis that read costs
about 1 µs a member, a call of a few thousand members a ranking, and the batches' rankings ask
for much the same items again: in ``streamrec bench step`` 29 % of a call's members were asked
by the call before, 78 % by one of the eight before.

:class:`SegmentPopularity` keeps what it read, per segment, for up to ``seconds``, and brings it
up to date with this engine's own commits (:meth:`committed`: the rescale, then the increments,
as the stores apply them). With one writer the scores it gives are therefore the stored ones,
exactly. With several workers another worker's increments are seen once the segment's scores
are read again, at most ``seconds`` later; another worker's rescale (a new reference time, seen
by every load) drops the segment's scores at once (:meth:`sync`). A commit whose outcome is not
known (an error other than a conflict) drops every segment's (:meth:`clear`). A read that
overlaps a commit of this engine (a timer's push while a batch commits) is given, not kept: it may
or may not hold the commit's increments, which :meth:`committed` then adds.

>>> import asyncio
>>> from stream.state.base import PopularityChange
>>> class Store:  # a state with one segment's scores
...     scores = {"a": 2.0}
...     asked = []
...     async def segment_scores(self, wanted):
...         self.asked.append(wanted)
...         return {s: np.array([self.scores.get(i, 0.0) for i in ids]) for s, ids in wanted.items()}
>>> kept = SegmentPopularity(Store(), seconds=60.0, clock=lambda: 0.0)
>>> kept.sync({"s": 100.0})
>>> asyncio.run(kept.segment_scores({"s": ["a", "b"]}))["s"].tolist()
[2.0, 0.0]
>>> kept.committed({"s": PopularityChange(100.0, 100.0, None, {"b": 1.5})})
>>> asyncio.run(kept.segment_scores({"s": ["b", "a"]}))["s"].tolist(), len(Store.asked)
([1.5, 2.0], 1)
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from stream.state.base import PopularityChange

__all__ = ["SegmentPopularity"]


class _Kept:
    __slots__ = ("ref", "since", "scores")

    def __init__(self, ref: float | None, since: float) -> None:
        self.ref = ref  # the reference time the scores are relative to
        self.since = since  # when the first of them was read
        self.scores: dict[str, float] = {}


class _Writing:
    def __init__(self, kept: "SegmentPopularity") -> None:
        self.kept = kept

    def __enter__(self) -> None:
        self.kept._writing += 1
        self.kept._version += 1

    def __exit__(self, *exc) -> None:
        self.kept._writing -= 1
        self.kept._version += 1


class SegmentPopularity:
    """``state``'s segment popularity scores, kept up to ``seconds`` (0: read every time).

    It stands in for ``state`` where ranking reads: :meth:`segment_scores` is kept, every other
    attribute is ``state``'s."""

    def __init__(self, state, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if seconds < 0:
            raise ValueError(f"SegmentPopularity: seconds must be >= 0, got {seconds}")
        self.state = state
        self.seconds = float(seconds)
        self.clock = clock
        self._refs: dict[str, float | None] = {}  # each segment's reference time, as last known
        self._kept: dict[str, _Kept] = {}
        self._version = 0  # moves with every change of what is kept (a read meanwhile is not kept)
        self._writing = 0  # this engine's commits in flight (a read meanwhile is not kept)
        self.asked = 0  # members asked for, and read from the state (a hit rate)
        self.read = 0

    def __getattr__(self, name: str):
        return getattr(self.state, name)

    def sync(self, refs: dict[str, float | None]) -> None:
        """The segments' reference times as just loaded: a segment whose scale moved meanwhile
        (another worker rescaled it) is read again."""
        for seg, ref in refs.items():
            self._refs[seg] = ref
            kept = self._kept.get(seg)
            if kept is not None and kept.ref != ref:
                del self._kept[seg]
                self._version += 1

    def writing(self) -> "_Writing":
        """Around this engine's commit: ``with kept.writing(): await state.commit(c)``, then
        :meth:`committed` once it succeeded."""
        return _Writing(self)

    def committed(self, changes: dict[str, PopularityChange]) -> None:
        """This engine's commit of these changes succeeded: the kept scores follow it."""
        self._version += 1
        for seg, change in changes.items():
            self._refs[seg] = change.ref_after
            kept = self._kept.get(seg)
            if kept is None:
                continue
            if kept.ref != change.ref_before:  # kept under another scale: read them again
                del self._kept[seg]
                continue
            scores = kept.scores
            if change.factor is not None:
                for item in scores:
                    scores[item] *= change.factor
            kept.ref = change.ref_after
            for item, inc in change.increments.items():
                if item in scores:
                    scores[item] += inc

    def clear(self) -> None:
        """Forget every kept score (a commit's outcome is not known)."""
        self._kept.clear()
        self._version += 1

    async def segment_scores(self, wanted: dict[str, list[str]]) -> dict[str, np.ndarray]:
        if not self.seconds:
            return await self.state.segment_scores(wanted)
        now = self.clock()
        kept_now: dict[str, _Kept] = {}
        missing: dict[str, list[str]] = {}
        for seg, items in wanted.items():
            kept = self._kept.get(seg)
            if kept is None or now - kept.since > self.seconds:
                kept = self._kept[seg] = _Kept(self._refs.get(seg), now)
            kept_now[seg] = kept
            scores = kept.scores
            new = [i for i in items if i not in scores]
            if new:
                missing[seg] = new
            self.asked += len(items)
        got: dict[str, dict[str, float]] = {}
        if missing:
            version, idle = self._version, not self._writing
            answers = await self.state.segment_scores(missing)
            got = {seg: dict(zip(items, answers[seg].tolist())) for seg, items in missing.items()}
            self.read += sum(map(len, missing.values()))
            if idle and self._version == version:  # no commit meanwhile: what was read is current
                for seg, values in got.items():
                    kept_now[seg].scores.update(values)
                got = {}
        out = {}
        for seg, items in wanted.items():
            scores = kept_now[seg].scores
            if seg in got:  # read while a commit changed the kept ones: given, not kept
                extra = got[seg]
                out[seg] = np.array([scores[i] if i in scores else extra[i] for i in items], dtype=np.float64)
            else:
                out[seg] = np.fromiter(map(scores.__getitem__, items), dtype=np.float64, count=len(items))
        return out
