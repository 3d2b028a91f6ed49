"""Reading streamrec's user and item vectors from Redis, for other services (sync redis-py).

.. code-block:: python

    reader = EmbeddingReader.from_settings()
    user = reader.user("u000042")                  # Embedding(vector, bias, version, updated_at) or None
                                                   # (by raw id: hashed when STREAMREC_ID_KEY is set)
    ids, matrix = reader.items(["i1", "i2", "i3"])  # found ids and their (n, dim) float32 matrix
    scores = matrix @ user.vector
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stream.config import Settings, get_settings
from stream.pseudonyms import Pseudonyms
from stream.state.embeddings import Embedding
from stream.state.keys import Keys

__all__ = ["EmbeddingReader", "Embedding"]


class EmbeddingReader:
    """Reads rows by id; ``ids`` maps a user's raw id to the one in Redis (its pseudonym when
    STREAMREC_ID_KEY is set). Reading needs no more than a read-only ACL user on the prefix
    (stream.stack.redis.reader_acl)."""

    def __init__(self, redis, keys: Keys, ids: Pseudonyms | None = None):
        self.redis = redis
        self.keys = keys
        self.ids = ids or Pseudonyms(None)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "EmbeddingReader":
        s = settings or get_settings()
        return cls(s.redis_client(), Keys(s.redis_prefix),
                   Pseudonyms.from_settings(s))

    def _get(self, kind: str, ids: Sequence[str]) -> list[Embedding | None]:
        pipe = self.redis.pipeline(transaction=False)
        for entity in ids:
            pipe.hgetall(self.keys.embedding(kind, entity))
        return [Embedding.from_hash(h) if h else None for h in pipe.execute()]

    def user(self, user_id: str) -> Embedding | None:
        return self._get("user", [self.ids.user(user_id)])[0]

    def item(self, item_id: str) -> Embedding | None:
        return self._get("item", [item_id])[0]

    def items(self, item_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The ids found and their vectors stacked, shape (found, dim), one round trip."""
        found = [(i, e) for i, e in zip(item_ids, self._get("item", item_ids)) if e is not None]
        if not found:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [i for i, _ in found], np.stack([e.vector for _, e in found])
