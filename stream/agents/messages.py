"""The worker's internal Kafka messages: item gradients and item rows, as JSON (no pickle).

Arrays travel as base64 of little-endian bytes, with their length checked on the way in.

    item-updates  (partition = the items' owner, see stream.models.sharded.item_partition)
      {"schema": "item-grad-v1", "dim": k, "items": [ids], "grad": b64 f32 (m, k + 2),
       "ex_b": b64 f32 (m,), "pos_w": b64 f64 (m,), "source": "topic/partition@offset"}
      {"schema": "item-init-v1", "item_id": id, "categories": [str]}   (a new item, from the catalogue)
    item-factors  (key = item_id, compacted: the latest row of every item)
      {"schema": "item-factors-v1", "item_id": id, "dim": k, "vec": b64 f32 (k,), "bias": f,
       "acc": f, "acc_b": f, "pop": f, "version": n, "updated_at": epoch seconds}

Examples
--------
>>> import numpy as np
>>> from stream.models.sharded import ItemGradients
>>> g = ItemGradients(["a"], np.ones((1, 4), np.float32), np.ones(1, np.float32), np.zeros(1))
>>> decode_gradients(encode_gradients(g, 2, "clicks/0@5")).grad.tolist()
[[1.0, 1.0, 1.0, 1.0]]
>>> decode_gradients(b'{"schema": "item-grad-v1", "dim": 2, "items": ["a"], "grad": "", "ex_b": "", "pos_w": ""}')
Traceback (most recent call last):
...
ValueError: item-grad-v1: grad has 0 bytes, must have 16
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import numpy as np

from stream.models.sharded import ItemGradients, ItemState

__all__ = ["encode_gradients", "decode_gradients", "encode_item", "decode_item", "ItemInit", "encode_init",
           "decode_item_update"]

_F4, _F8 = np.dtype("<f4"), np.dtype("<f8")


def _b64(array: np.ndarray, dtype: np.dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _array(body: dict, name: str, dtype: np.dtype, count: int, schema: str) -> np.ndarray:
    raw = base64.b64decode(body.get(name, ""), validate=True)
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"{schema}: {name} has {len(raw)} bytes, must have {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))


def _body(data: bytes, schema: str) -> dict:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{schema}: not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("schema") != schema:
        raise ValueError(f"{schema}: a JSON object with \"schema\": \"{schema}\" expected")
    return body


def encode_gradients(grads: ItemGradients, dim: int, source: str) -> bytes:
    return json.dumps({"schema": "item-grad-v1", "dim": dim, "items": grads.item_ids,
                       "grad": _b64(grads.grad, _F4), "ex_b": _b64(grads.ex_b, _F4),
                       "pos_w": _b64(grads.pos_w, _F8), "source": source}, separators=(",", ":")).encode()


def decode_gradients(data: bytes) -> ItemGradients:
    return _gradients(_body(data, "item-grad-v1"))


def _gradients(body: dict) -> ItemGradients:
    schema = "item-grad-v1"
    items, dim = body.get("items"), body.get("dim")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items) or not isinstance(dim, int):
        raise ValueError(f"{schema}: items must be a list of strings and dim an integer")
    m = len(items)
    grad = _array(body, "grad", _F4, m * (dim + 2), schema).reshape(m, dim + 2)
    return ItemGradients(items, grad, _array(body, "ex_b", _F4, m, schema), _array(body, "pos_w", _F8, m, schema))


@dataclass(frozen=True)
class ItemInit:
    """A new item's categories: its owner starts its row from the mean of those categories' items."""

    item_id: str
    categories: list[str]


def encode_init(item_id: str, categories: list[str]) -> bytes:
    return json.dumps({"schema": "item-init-v1", "item_id": item_id, "categories": categories},
                      separators=(",", ":")).encode()


def decode_item_update(data: bytes) -> ItemGradients | ItemInit:
    """An item-updates message: gradients, or a new item's categories.

    >>> decode_item_update(encode_init("i1", ["jazz"]))
    ItemInit(item_id='i1', categories=['jazz'])
    """
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"item-updates message: not JSON: {exc}") from exc
    schema = body.get("schema") if isinstance(body, dict) else None
    if schema == "item-grad-v1":
        return _gradients(body)
    if schema == "item-init-v1":
        item, cats = body.get("item_id"), body.get("categories")
        if not isinstance(item, str) or not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise ValueError("item-init-v1: item_id must be a string and categories a list of strings")
        return ItemInit(item, cats)
    raise ValueError(f"item-updates message: a JSON object with \"schema\" item-grad-v1 or item-init-v1 expected, "
                     f"got {schema!r}")


def encode_item(state: ItemState) -> bytes:
    return json.dumps({"schema": "item-factors-v1", "item_id": state.item_id, "dim": len(state.vector),
                       "vec": _b64(state.vector, _F4), "bias": state.bias, "acc": state.acc, "acc_b": state.acc_b,
                       "pop": state.pop, "version": state.version, "updated_at": state.updated_at},
                      separators=(",", ":")).encode()


def decode_item(data: bytes) -> ItemState:
    schema = "item-factors-v1"
    body = _body(data, schema)
    try:
        dim = int(body["dim"])
        return ItemState(str(body["item_id"]), _array(body, "vec", _F4, dim, schema), float(body["bias"]),
                         float(body["acc"]), float(body["acc_b"]), float(body["pop"]), int(body["version"]),
                         float(body["updated_at"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{schema}: missing or invalid field: {exc}") from exc
