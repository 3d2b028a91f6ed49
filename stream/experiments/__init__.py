"""Experiments (A/B tests): statistics and reports.

Submodules are imported on use; importing this package is cheap (no numpy, scipy or matplotlib).
"""

__all__ = ["report", "stats"]
