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

Scores are kept by item row (a float64 array per segment, NaN for a row not read yet): a
ranking asks by the rows of its candidates, and only the rows not kept are read, by id.

>>> import asyncio
>>> from stream.models.hybrid import HybridParams
>>> from stream.models.items import ItemTable
>>> from stream.state.base import PopularityChange
>>> class Store:  # a state with one segment's scores
...     scores = {"a": 2.0}
...     asked = []
...     async def segment_scores(self, wanted):
...         self.asked.append(wanted)
...         return {s: np.array([self.scores.get(i, 0.0) for i in ids]) for s, ids in wanted.items()}
>>> table = ItemTable(HybridParams(mf={"n_factors": 4}))
>>> rows = table.rows(["a", "b"])
>>> kept = SegmentPopularity(Store(), 60.0, table, clock=lambda: 0.0)
>>> kept.sync({"s": 100.0})
>>> asyncio.run(kept.scores_at({"s": rows}))["s"].tolist()
[2.0, 0.0]
>>> kept.committed({"s": PopularityChange(100.0, 100.0, None, {"b": 1.5})})
>>> asyncio.run(kept.scores_at({"s": rows[::-1]}))["s"].tolist(), Store.asked
([1.5, 2.0], [{'s': ['a', 'b']}])
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from stream.state.base import PopularityChange

__all__ = ["SegmentPopularity"]


class _Kept:
    __slots__ = ("ref", "since", "values")

    def __init__(self, ref: float | None, since: float, n: int) -> None:
        self.ref = ref  # the reference time the scores are relative to
        self.since = since  # when the first of them was read
        self.values = np.full(n, np.nan)  # by item row; NaN: not read


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
    """``state``'s segment popularity scores of ``table``'s item rows, kept up to ``seconds``
    (0: read every time).

    It stands in for ``state`` where ranking reads: :meth:`scores_at` reads by item row, every
    other attribute is ``state``'s."""

    def __init__(self, state, seconds: float, table, clock: Callable[[], float] = time.monotonic) -> None:
        if seconds < 0:
            raise ValueError(f"SegmentPopularity: seconds must be >= 0, got {seconds}")
        self.state = state
        self.seconds = float(seconds)
        self.table = table  # the item side: item_ids (row -> id), known_rows (ids -> rows)
        self.clock = clock
        self._refs: dict[str, float | None] = {}  # each segment's reference time, as last known
        self._kept: dict[str, _Kept] = {}
        self._version = 0  # moves with every change of what is kept (a read meanwhile is not kept)
        self._writing = 0  # this engine's commits in flight (a read meanwhile is not kept)
        self.asked = 0  # scores asked for, and read from the state (a hit rate)
        self.read = 0

    def __getattr__(self, name: str):
        if name == "state":  # not set yet (a half-built object): no recursion
            raise AttributeError(name)
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

    def writing(self) -> _Writing:
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
            values = kept.values
            if change.factor is not None:
                values *= change.factor
            kept.ref = change.ref_after
            if change.increments:
                rows = self.table.known_rows(list(change.increments))
                inc = np.fromiter(change.increments.values(), dtype=np.float64, count=len(change.increments))
                ok = (rows >= 0) & (rows < len(values))  # an item without a row was never read by row
                values[rows[ok]] += inc[ok]  # (NaN, not read, stays NaN)

    def clear(self) -> None:
        """Forget every kept score (a commit's outcome is not known)."""
        self._kept.clear()
        self._version += 1

    async def scores_at(self, wanted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per segment, the score of each item row asked for (unique rows; 0 when the segment has
        none for the item)."""
        if not self.seconds:
            return await self._read(wanted)
        now = self.clock()
        n = len(self.table.item_ids)
        out: dict[str, np.ndarray] = {}
        kept_now: dict[str, _Kept] = {}
        missing: dict[str, np.ndarray] = {}  # positions in the rows asked for
        for seg, rows in wanted.items():
            kept = self._kept.get(seg)
            if kept is None:
                kept = self._kept[seg] = _Kept(self._refs.get(seg), now, n)
            elif now - kept.since > self.seconds:  # read them again (the array reused: 8 B an item)
                kept.values.fill(np.nan)
                kept.ref, kept.since = self._refs.get(seg), now
            if len(kept.values) < n:  # the table grew
                kept.values = np.concatenate([kept.values, np.full(n - len(kept.values), np.nan)])
            kept_now[seg] = kept
            out[seg] = got = kept.values[rows]
            new = np.flatnonzero(np.isnan(got))
            if len(new):
                missing[seg] = new
            self.asked += len(rows)
        if missing:
            version, idle = self._version, not self._writing
            answers = await self._read({seg: wanted[seg][at] for seg, at in missing.items()})
            keep = idle and self._version == version  # no commit meanwhile: what was read is current
            for seg, at in missing.items():
                out[seg][at] = answers[seg]
                self.read += len(at)
                if keep:
                    kept_now[seg].values[wanted[seg][at]] = answers[seg]
        return out

    async def _read(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The state's scores of these item rows, named by id."""
        ids = self.table.item_ids
        return await self.state.segment_scores({seg: list(map(ids.__getitem__, r.tolist())) for seg, r in rows.items()})
