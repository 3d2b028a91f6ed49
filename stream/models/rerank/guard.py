"""The guard of a segment model: serve the global ranking while the segment's ranking does worse.

On each prequential trial of a segment (a positive event whose item is new to the user),
both rankings are known before learning: the segment model's and the global model's.
The guard keeps the paired hit difference ``d = hit(segment) - hit(global)`` (each 0 or 1)
of the segment's last ``window`` trials and switches:

* to the global ranking when, with at least ``min_trials`` trials in the window, the mean
  of ``d`` falls below ``-max(margin, z * se)``, ``se`` being the standard error of that
  mean (``sqrt(var(d) / n)``): worse by more than the margin and beyond noise, so that a
  chance run of misses does not switch (with ``z = 0`` the margin alone decides);
* back to the segment model when the mean of ``d`` is at least ``recover_margin``
  (default 0: the segment model does at least as well as the global one again).

The segment model keeps learning and being scored while the global ranking is served (it
is scored in the shadow), so it can recover. Both models are scored on the same events,
so the comparison is paired: trials where both hit or both miss add 0.

Every switch is kept (:attr:`SegmentGuard.switches`, a list of dicts, since the guard was
made or loaded) and logged with :mod:`logging` at WARNING level, so the worker can count them
as a metric. The state round-trips through plain text fields (:meth:`SegmentGuard.to_state`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["SegmentGuard"]

log = logging.getLogger(__name__)


class SegmentGuard:
    """Rolling paired comparison of a segment model against the global model, with fallback.

    Parameters
    ----------
    segment
        The segment's name (in logs and switch records).
    window
        Trials of the segment kept for the comparison.
    margin
        How much worse (hit-rate difference over the window) the segment model may be before
        the segment falls back to the global ranking.
    min_trials
        Trials needed in the window before the guard may switch at all.
    z
        Standard errors the mean difference must fall below zero, besides the margin.
    recover_margin
        Mean difference at or above which a fallen-back segment serves its model again.

    Examples
    --------
    >>> guard = SegmentGuard("students", window=4, margin=0.2, min_trials=4, z=0.0)
    >>> [guard.update(s, g) for s, g in [(1, 1), (0, 1), (0, 1), (0, 0)]]  # True: a switch
    [False, False, False, True]
    >>> guard.serving_segment, guard.switches[0]["to"], guard.switches[0]["mean_difference"]
    (False, 'global', -0.5)
    >>> [guard.update(1, 0) for _ in range(3)]  # the segment model recovers
    [False, True, False]
    >>> guard.serving_segment, len(guard.switches)
    (True, 2)
    """

    def __init__(self, segment: str, window: int = 500, margin: float = 0.01, min_trials: int = 100,
                 z: float = 2.0, recover_margin: float = 0.0) -> None:
        if window < 1 or min_trials < 1 or min_trials > window:
            raise ValueError(f"SegmentGuard({segment!r}): need 1 <= min_trials <= window, "
                             f"got min_trials={min_trials}, window={window}")
        if margin < 0 or z < 0 or recover_margin < -margin:
            raise ValueError(f"SegmentGuard({segment!r}): need margin >= 0, z >= 0 and recover_margin >= -margin, "
                             f"got margin={margin}, z={z}, recover_margin={recover_margin}")
        self.segment = segment
        self.window = window
        self.margin = margin
        self.min_trials = min_trials
        self.z = z
        self.recover_margin = recover_margin
        self._diffs = np.zeros(window, dtype=np.int8)  # ring buffer of hit(segment) - hit(global)
        self._sum = 0
        self._sum_sq = 0  # of the window's differences: the discordant trials
        self.trials = 0  # all trials seen, the window's position is trials % window
        self.serving_segment = True
        self.switches: list[dict[str, Any]] = []  # since this object was made
        self.n_switches = 0  # before that (a guard loaded from its state)
        self.version = 0  # the stored state's trials when loaded (the state's version)

    @property
    def n_window(self) -> int:
        return min(self.trials, self.window)

    @property
    def mean_difference(self) -> float:
        """Mean of hit(segment) - hit(global) over the window (0 before any trial)."""
        return self._sum / self.n_window if self.trials else 0.0

    @property
    def standard_error(self) -> float:
        """Standard error of the window's mean difference (0 below two trials)."""
        n = self.n_window
        if n < 2:
            return 0.0
        mean = self._sum / n
        return float(np.sqrt(max(self._sum_sq - n * mean * mean, 0.0) / (n - 1) / n))

    def update(self, segment_hit: bool | int, global_hit: bool | int) -> bool:
        """Record one trial; returns True when this trial switched the served ranking."""
        d = int(bool(segment_hit)) - int(bool(global_hit))
        pos = self.trials % self.window
        old = int(self._diffs[pos]) if self.trials >= self.window else 0
        self._sum += d - old
        self._sum_sq += d * d - old * old
        self._diffs[pos] = d
        self.trials += 1
        if self.n_window < self.min_trials:
            return False
        mean = self.mean_difference
        if self.serving_segment and mean < -max(self.margin, self.z * self.standard_error):
            self._switch("global", mean)
            return True
        if not self.serving_segment and mean >= self.recover_margin:
            self._switch("segment", mean)
            return True
        return False

    def _switch(self, to: str, mean: float) -> None:
        self.serving_segment = to == "segment"
        record = {"segment": self.segment, "trial": self.trials, "to": to, "mean_difference": round(mean, 6),
                  "window": self.n_window}
        self.switches.append(record)
        log.warning("segment guard: segment %r now serves the %s ranking (trial %d, mean hit difference "
                 "segment - global %+.4f, standard error %.4f, over %d trials; margin %.4f)", self.segment, to,
                 self.trials, mean, self.standard_error, self.n_window, self.margin)

    # -- persistence (plain data) ------------------------------------------------
    def to_state(self) -> dict[str, str]:
        """The state as text fields (the window as one character per trial: "a" -1, "b" 0, "c" +1).
        ``trials`` only grows, so it doubles as the state's version."""
        return {"ring": bytes((self._diffs + 98).astype(np.uint8)).decode("ascii"), "trials": str(self.trials),
                "sum": str(self._sum), "sum_sq": str(self._sum_sq),
                "serving": "segment" if self.serving_segment else "global",
                "switches": str(self.n_switches + len(self.switches))}

    @classmethod
    def from_state(cls, segment: str, state: dict[str, str] | None, **params) -> "SegmentGuard":
        """A guard with ``params`` (its window, margin, ...) from :meth:`to_state`'s fields; a
        missing state, or one kept for another window length, starts afresh (serving the segment)."""
        guard = cls(segment, **params)
        if not state:
            return guard
        ring = state.get("ring", "")
        serving = state.get("serving", "segment")
        guard.n_switches = int(state.get("switches", 0) or 0)
        guard.serving_segment = serving != "global"
        if len(ring) == guard.window:
            guard._diffs = np.frombuffer(ring.encode("ascii"), dtype=np.uint8).astype(np.int8) - 98
            guard.trials = int(state.get("trials", 0) or 0)
            guard._sum, guard._sum_sq = int(state.get("sum", 0) or 0), int(state.get("sum_sq", 0) or 0)
        guard.version = int(state.get("trials", 0) or 0)  # what was stored (the window may restart)
        return guard
