"""User and item vectors in Redis: packed float32, with the model version and update time.

One Redis hash per vector, ``{prefix}:emb:{kind}:{id}`` (kind = user | item)::

    vec         float32, little-endian, dim x 4 bytes (no pickle: plain numbers)
    dim         number of factors
    bias        the row's bias (float, text)
    version     model version that wrote it (text)
    updated_at  epoch seconds (text)

Writes go through one pipeline per batch. Readers in other services use
:class:`consumers.embeddings.EmbeddingReader`, which needs only redis-py and NumPy.

Examples
--------
>>> import numpy as np
>>> v = np.array([0.5, -1.0, 2.0], dtype=np.float32)
>>> unpack(pack(v), 3).tolist()
[0.5, -1.0, 2.0]
>>> unpack(b"12345", 3)
Traceback (most recent call last):
...
ValueError: embedding has 5 bytes: must be dim x 4 = 12 bytes of float32
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from stream.store.keys import Keys

__all__ = ["pack", "unpack", "Embedding", "EmbeddingWriter", "BackpressureError"]

_DTYPE = np.dtype("<f4")


def pack(vector: np.ndarray) -> bytes:
    """A 1-D vector as little-endian float32 bytes."""
    arr = np.asarray(vector)
    if arr.ndim != 1:
        raise ValueError(f"embedding has shape {arr.shape}: must be one-dimensional")
    return arr.astype(_DTYPE, copy=False).tobytes()


def unpack(data: bytes, dim: int) -> np.ndarray:
    """Bytes back to a float32 vector of ``dim`` factors."""
    if len(data) != dim * _DTYPE.itemsize:
        raise ValueError(f"embedding has {len(data)} bytes: must be dim x 4 = {dim * 4} bytes of float32")
    return np.frombuffer(data, dtype=_DTYPE).astype(np.float32)


@dataclass(frozen=True)
class Embedding:
    vector: np.ndarray
    bias: float
    version: str
    updated_at: float

    @classmethod
    def from_hash(cls, fields: dict[bytes, bytes]) -> "Embedding":
        dim = int(fields[b"dim"])
        return cls(unpack(fields[b"vec"], dim), float(fields.get(b"bias", b"0")),
                   fields.get(b"version", b"").decode(), float(fields.get(b"updated_at", b"0")))


class BackpressureError(RuntimeError):
    """The writer holds more pending rows than it may; flush before adding more."""


class EmbeddingWriter:
    """Collects vectors and writes them in one pipeline on :meth:`flush` (async redis-py).

    Rows added twice before a flush are written once, with the last value.
    """

    def __init__(self, redis, keys: Keys, *, max_pending: int = 100_000):
        self.redis = redis
        self.keys = keys
        self.max_pending = max_pending
        self._pending: dict[tuple[str, str], dict[str, bytes | str]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, kind: str, ids: Sequence[str], vectors: np.ndarray, *, version: str, updated_at: float,
            biases: np.ndarray | None = None) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(f"vectors have shape {vectors.shape}: must be (len(ids)={len(ids)}, dim)")
        if biases is not None and len(biases) != len(ids):
            raise ValueError(f"biases have {len(biases)} entries: must have len(ids)={len(ids)}")
        if len(self._pending) + len(ids) > self.max_pending:
            raise BackpressureError(f"{len(self._pending)} rows pending, {len(ids)} more would pass {self.max_pending}")
        dim = str(vectors.shape[1])
        stamp = repr(float(updated_at))
        for n, entity in enumerate(ids):
            self._pending[(kind, entity)] = {
                "vec": vectors[n].astype(_DTYPE, copy=False).tobytes(),
                "dim": dim,
                "bias": repr(float(biases[n])) if biases is not None else "0.0",
                "version": str(version),
                "updated_at": stamp,
            }

    async def flush(self) -> int:
        """Write everything pending in one pipeline; returns the rows written."""
        if not self._pending:
            return 0
        try:
            pipe = self.redis.pipeline(transaction=False)
            for (kind, entity), mapping in self._pending.items():
                pipe.hset(self.keys.embedding(kind, entity), mapping=mapping)
            await pipe.execute()
            return len(self._pending)
        finally:
            # Cleared even on failure: the caller retries the batch, which adds the rows again.
            self._pending.clear()
