"""The recommender engine: one batch step, offline and in the worker (see :mod:`stream.engine.engine`).

Faust-free: the worker's agents (stream/agents/) feed it batches; ``streamrec evaluate`` drives
the same code in memory (:class:`~stream.engine.offline.EngineRanker`).
"""

from stream.engine.config import MODEL_NAMES, EngineConfig

__all__ = ["EngineConfig", "MODEL_NAMES"]
