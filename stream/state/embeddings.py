"""User and item vectors in Redis: packed float32, with the model version and update time.

One Redis hash per vector, ``{prefix}:emb:{kind}:{id}`` (kind = user | item), written by the
engine's commits (:mod:`stream.state.redis`) with these fields among others::

    vec         float32, little-endian, dim x 4 bytes (no pickle: plain numbers)
    dim         number of factors
    bias        the row's bias (float, text)
    version     model version that wrote it (text)
    updated_at  epoch seconds (text)

Readers in other services use :class:`consumers.embeddings.EmbeddingReader`, which needs
only redis-py and NumPy.

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

import numpy as np

__all__ = ["pack", "unpack", "Embedding"]

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
