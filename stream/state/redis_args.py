"""Argument builders and reply readers of the Redis state's scripts (stream/state/lua/)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from stream.engine.messages import MODEL_VERSION
from stream.models.sharded import UserState
from stream.state.base import text

__all__ = ["CommitArgs", "user_row_fields", "pairs_text", "pairs_float", "num"]


def num(x: float) -> str:
    """A number as the scripts take it: Python's repr of the float (an exact round trip)."""
    return repr(float(x))


class CommitArgs:
    """Builds commit.lua's arguments: the JSON part and the binary values beside it."""

    def __init__(self) -> None:
        self.binary: list[bytes] = []
        self.absent: list[str] = []
        self.expect: list[list] = []
        self.expect_str: list[list] = []
        self.not_in: list = []
        self.ops: list[list] = []
        self.ttl = 60

    def blob(self, data: bytes) -> dict:
        self.binary.append(data)
        return {"b": len(self.binary) + 1}  # ARGV[1] is the JSON

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        args: list[Any] = ["hset", key]
        for f, v in mapping.items():
            args += [f, self.blob(v) if isinstance(v, bytes) else str(v)]
        self.ops.append(args)

    def op(self, *args) -> None:
        self.ops.append([a if isinstance(a, (str, dict)) else str(a) for a in args])

    def argv(self) -> list:
        body = {"absent": self.absent, "ttl": int(self.ttl), "expect": self.expect, "expect_str": self.expect_str,
                "not_in": self.not_in, "ops": self.ops}
        return [json.dumps(body, separators=(",", ":")), *self.binary]


def user_row_fields(state: UserState) -> dict[str, bytes | str]:
    """A user's MF row for readers (:class:`consumers.embeddings.EmbeddingReader`)."""
    return {"vec": np.asarray(state.vector, dtype="<f4").tobytes(), "dim": str(len(state.vector)),
            "bias": num(state.bias), "version": MODEL_VERSION, "updated_at": num(state.updated_at)}


def pairs_text(raw) -> dict[str, str]:
    return {text(raw[i]): text(raw[i + 1]) for i in range(0, len(raw or []), 2)}


def pairs_float(raw) -> dict[str, float]:
    return {text(raw[i]): float(raw[i + 1]) for i in range(0, len(raw or []), 2)}
