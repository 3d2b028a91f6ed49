"""Faust agents: ingest (validate, dedupe, dead-letter, learn, push), catalogue (profiles, items),
requests (answers rec-requests).

Importing this package registers the agents on :data:`stream.app.app`; the worker
does so by autodiscovery.
"""

from stream.agents import catalogue, ingest, requests

__all__ = ["ingest", "catalogue", "requests"]
