"""Faust agents, and nothing else: they feed the engine (stream/engine/) batches.

    ingest      interaction events -> Engine.step (validate, dead-letter, learn, push)
    items       item-updates -> the items' owner; item-factors -> this worker's copy of the item rows
    catalogue   profiles and item metadata
    requests    rec-requests answered on the recommendations topic
    erasures    user-erasures: a user's state erased, a tombstone, a reply on user-erasures.done

Importing this package registers the agents on :data:`stream.app.app`; the worker does so by
autodiscovery.
"""

from stream.agents import catalogue, erasures, ingest, items, requests

__all__ = ["ingest", "items", "catalogue", "requests", "erasures"]
