"""Catalogue coverage of served lists over a sliding window, in bounded memory.

One float per item row (when it was last served), so memory grows with the catalogue, never
with traffic: coverage is the share of the catalogue's servable rows served within the window.

Examples
--------
>>> import numpy as np
>>> window = CoverageWindow(window_seconds=60.0)
>>> window.add(np.array([0, 1]), now=0.0)
>>> window.add(np.array([1, 2]), now=50.0)
>>> window.ratio(now=55.0, servable=np.ones(4, dtype=bool)), window.ratio(now=100.0, servable=np.ones(4, dtype=bool))
(0.75, 0.5)
"""

from __future__ import annotations

import numpy as np

__all__ = ["CoverageWindow"]


class CoverageWindow:
    """Distinct item rows served within the last ``window_seconds`` (see the module docstring)."""

    def __init__(self, window_seconds: float) -> None:
        if not window_seconds > 0:
            raise ValueError(f"CoverageWindow: window_seconds must be > 0, got {window_seconds!r}")
        self.window_seconds = window_seconds
        self._last = np.zeros(0, dtype=np.float64)  # row -> when last served (-inf: never)

    def add(self, rows: np.ndarray, now: float) -> None:
        """Rows (>= 0) served at ``now``."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[rows >= 0]
        if not len(rows):
            return
        need = int(rows.max()) + 1
        if need > len(self._last):
            grown = np.full(max(need, 2 * len(self._last)), -np.inf)
            grown[: len(self._last)] = self._last
            self._last = grown
        self._last[rows] = now

    def ratio(self, now: float, servable: np.ndarray) -> float:
        """Rows served within the window / servable rows (``servable``: a bool per catalogue row)."""
        n = int(np.count_nonzero(servable))
        if not n:
            return 0.0
        recent = self._last[: len(servable)] >= now - self.window_seconds
        return int(np.count_nonzero(recent & servable[: len(recent)])) / n
