"""Which variant a user is served: a deterministic, sticky draw, frozen at first assignment.

A user's variant in an experiment is a salted hash of (salt, user id) mapped onto the
variants' shares (:func:`pick`): the same user always draws the same variant, whichever worker
asks. *Eligibility* is what needs state: a user joins an experiment the first time they are seen
in one of its segments (:meth:`Assigner.assign` stores the assignment, once), and stays in it
after a move to another segment. A user is in at most one experiment (the file's segments do not
overlap), and changing an experiment's shares or variants means a new salt (a new draw).

Examples
--------
>>> from stream.experiments.definition import parse
>>> exp = parse('''
... [[experiment]]
... name = "e"
... [[experiment.variant]]
... name = "a"
... share = 0.5
... [[experiment.variant]]
... name = "b"
... share = 0.5''')[0]
>>> pick(exp, "alice") == pick(exp, "alice")
True
>>> from collections import Counter
>>> sorted(Counter(pick(exp, f"u{n}") for n in range(10_000)).items())
[('a', 4967), ('b', 5033)]
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Callable

from stream.experiments.definition import Experiment
from stream.experiments.state import ExperimentState

__all__ = ["draw", "pick", "Assigner", "Assignment"]

#: (experiment, variant)
Assignment = tuple[str, str]


def draw(salt: str, user_id: str) -> float:
    """A uniform number in [0, 1) from (salt, user id): SHA-256, its first 8 bytes."""
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick(experiment: Experiment, user_id: str) -> str:
    """The variant ``user_id`` draws in ``experiment`` (by the variants' cumulative shares)."""
    x = draw(experiment.salt, user_id)
    edge = 0.0
    for v in experiment.variants:
        edge += v.share
        if x < edge:
            return v.name
    return experiment.variants[-1].name


class Assigner:
    """Assigns users to experiments and remembers who is in which (see the module docstring).

    Parameters
    ----------
    experiments
        The experiments (segments that do not overlap).
    state
        Where assignments are kept.
    counters
        The initial per-user counters stored with an assignment (bytes).
    max_cached
        Assignments kept in this process (they never change, except by an erasure).
    metrics
        :class:`stream.metrics.Metrics` (assignments counted), or None.
    """

    def __init__(self, experiments: list[Experiment], state: ExperimentState, counters: Callable[[float], bytes],
                 clock: Callable[[], float] = time.time, max_cached: int = 200_000, metrics=None) -> None:
        self.experiments = list(experiments)
        self.state = state
        self.counters = counters
        self.clock = clock
        self.max_cached = max_cached
        self.metrics = metrics
        self._known: OrderedDict[str, Assignment] = OrderedDict()

    def forget(self, user_id: str) -> None:
        self._known.pop(user_id, None)

    async def assign(self, segments: dict[str, str]) -> dict[str, Assignment | None]:
        """Each user's (experiment, variant), or None: their stored assignment, else a new one
        when their segment (``segments``: user -> segment now) is in an experiment."""
        out: dict[str, Assignment | None] = {}
        unknown = []
        for uid in segments:
            got = self._known.get(uid)
            if got is not None:
                out[uid] = got
            else:
                unknown.append(uid)
        if not unknown or not self.experiments:
            return {uid: out.get(uid) for uid in segments}
        tokens = await self.state.tokens()
        queries = [(e.name, pick(e, uid), tokens.user(uid)) for uid in unknown for e in self.experiments]
        found = await self.state.members(queries)
        joins = []
        for n, uid in enumerate(unknown):
            hits = [queries[n * len(self.experiments) + j] for j, ok in
                    enumerate(found[n * len(self.experiments):(n + 1) * len(self.experiments)]) if ok]
            if hits:
                out[uid] = (hits[0][0], hits[0][1])
                continue
            exp = next((e for e in self.experiments if e.eligible(segments[uid])), None)
            if exp is not None:
                joins.append((uid, exp.name, pick(exp, uid)))
        if joins:
            now = self.clock()
            assigned = await self.state.assign([(e, v, tokens.user(uid), self.counters(now)) for uid, e, v in joins])
            for (uid, e, v), new in zip(joins, assigned):
                out[uid] = (e, v)
                if new and self.metrics is not None:
                    self.metrics.experiment_assignments_total.labels(e, v).inc()
        for uid in unknown:
            if out.get(uid) is not None:
                self._known[uid] = out[uid]
        while len(self._known) > self.max_cached:
            self._known.popitem(last=False)
        return {uid: out.get(uid) for uid in segments}
