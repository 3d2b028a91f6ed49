"""Faust agents: ingest (validate, dedupe, dead-letter, learn, push) and catalogue (profiles, items).

Importing this package registers the agents on :data:`stream.app.app`; the worker
does so by autodiscovery.
"""

from stream.agents import catalogue, ingest

__all__ = ["ingest", "catalogue"]
