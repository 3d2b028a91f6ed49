"""Experiments (A/B tests): definitions (a TOML file), sticky assignment of users to variants,
per-variant serving, attribution of events to the lists that were served, and the statistics
and reports.

Submodules are imported on use; importing this package is cheap (no numpy, scipy or matplotlib).
"""

__all__ = ["assign", "attribution", "cli", "definition", "report", "serving", "state", "stats"]
