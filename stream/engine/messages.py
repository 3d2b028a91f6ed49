"""The engine's internal messages, as data (no pickle): item updates for the owners, item rows.

Arrays travel as base64 of little-endian bytes, their lengths checked on the way in. Item ids
in an update are listed once (``ids``) and referred to by position.

    item-updates  (partition = the items' owner, see stream.models.sharded.item_partition), binary
      (item-update-v3), little-endian: b"SIU3", dim u16, entry id length u16, ids length u32, then
      counts u32 of gradients m, popularity entries, count entries, pairs, and the popularity
      reference f8; the entry id (UTF-8), the item ids (one JSON list, UTF-8), then
      mf items i4 (m,), grad f4 (m, k + 2), ex_b f4 (m,), pos_w f8 (m,); pop items i4, w f8;
      counts items i4, w f8; pairs a i4, b i4, w f8 (positions in the ids)
      {"schema": "item-init-v1", "item_id": id, "categories": [str]}   (a new item, from the catalogue)
      (the JSON item-update-v2 of earlier versions is still read)
    item-factors  (key = item_id, compacted: the latest row of every item), binary (item-row-v3):
      b"SRR3", then little-endian: dim u16, neighbours u32, id length u16, updates i64,
      bias acc acc_b pop updated_at n gpop gpop_ref f8 x 8, the id (UTF-8), vec f4 (dim,),
      neighbour keys i8 (neighbours,) (stream.models.items.item_key), counts f4 (neighbours,)
      Binary because a row names up to 200 neighbours: by key, they are one array to write and
      to read, where a list of ids cost a Python step per neighbour on both sides.

Examples
--------
>>> from stream.models.items import ItemUpdate
>>> u = ItemUpdate.empty(2)
>>> u.add_pairs(["a"], ["b"], [1.0])
>>> back = decode_update(encode_update("e1", u, 2))[1]
>>> back.names(back.pair_b)
['b']
>>> decode_update(b'{"schema": "item-update-v2", "id": "e", "dim": 2, "ids": ["a"], "pairs": {"a": "", "b": "", "w": "AAAA"}}')
Traceback (most recent call last):
...
ValueError: item-update-v2: pairs.w has 3 bytes, must have 0
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass

import numpy as np

from stream.models.items import ItemRow, ItemUpdate
from stream.models.sharded import ItemGradients, ItemState

__all__ = ["MODEL_VERSION", "ItemInit", "encode_update", "encode_init", "decode_update", "encode_row", "decode_row",
           "row_from_fields"]

_F4, _F8, _I4 = np.dtype("<f4"), np.dtype("<f8"), np.dtype("<i4")

#: The model version written beside every vector (readers of embeddings see it); a row's own
#: count of owner updates is its ``updates`` field.
MODEL_VERSION = "online-mf-v2"


def _b64(array, dtype: np.dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _array(body: dict, name: str, dtype: np.dtype, count: int, schema: str, part: str = "") -> np.ndarray:
    where = f"{part}.{name}" if part else name
    try:
        raw = base64.b64decode(body.get(name, ""), validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{schema}: {where} is not base64: {exc}") from exc
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"{schema}: {where} has {len(raw)} bytes, must have {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))


def _part(body: dict, name: str, schema: str) -> dict:
    part = body.get(name) or {}
    if not isinstance(part, dict):
        raise ValueError(f"{schema}: {name} must be an object")
    return part


def _index(part: dict, name: str, n_ids: int, schema: str, where: str) -> np.ndarray:
    raw = base64.b64decode(part.get(name, ""), validate=True)
    if len(raw) % 4:
        raise ValueError(f"{schema}: {where}.{name} must be int32 positions")
    idx = np.frombuffer(raw, dtype=_I4).astype(np.int32)
    if len(idx) and (idx.min() < 0 or idx.max() >= n_ids):
        raise ValueError(f"{schema}: {where}.{name} must index the ids")
    return idx


@dataclass(frozen=True)
class ItemInit:
    """A new item's categories: its owner starts its row from the mean of those categories' items."""

    item_id: str
    categories: list[str]

    @property
    def entry_id(self) -> str:
        return f"init:{self.item_id}"


_UPDATE_MAGIC = b"SIU3"
_UPDATE_HEAD = struct.Struct("<4sHHIIIIId")  # magic, dim, id length, ids length, grads, pop, counts, pairs, pop ref


def encode_update(entry_id: str, u: ItemUpdate, dim: int) -> bytes:
    """An item-updates message (item-update-v3: binary arrays, the ids as one JSON list)."""
    ids = list(u.ids)
    g = u.grads
    grad_idx = np.zeros(0, dtype=_I4)
    if len(g):
        pos = {i: n for n, i in enumerate(ids)}
        for i in g.item_ids:
            if i not in pos:
                pos[i] = len(ids)
                ids.append(i)
        grad_idx = np.fromiter(map(pos.__getitem__, g.item_ids), dtype=_I4, count=len(g))
    eid = entry_id.encode("utf-8")
    id_blob = json.dumps(ids, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head = _UPDATE_HEAD.pack(_UPDATE_MAGIC, dim, len(eid), len(id_blob), len(g), len(u.pop_idx), len(u.count_idx),
                             len(u.pair_a), float(u.pop_ref))
    parts = [head, eid, id_blob, grad_idx.astype(_I4).tobytes(), np.ascontiguousarray(g.grad, dtype=_F4).tobytes(),
             np.asarray(g.ex_b, dtype=_F4).tobytes(), np.asarray(g.pos_w, dtype=_F8).tobytes()]
    for arr, dt in ((u.pop_idx, _I4), (u.pop_w, _F8), (u.count_idx, _I4), (u.count_w, _F8), (u.pair_a, _I4),
                    (u.pair_b, _I4), (u.pair_w, _F8)):
        parts.append(np.asarray(arr, dtype=dt).tobytes())
    return b"".join(parts)


def _decode_binary_update(data: bytes) -> tuple[str, ItemUpdate]:
    schema = "item-update-v3"
    if len(data) < _UPDATE_HEAD.size:
        raise ValueError(f"{schema}: {len(data)} bytes, shorter than its head")
    _, dim, n_eid, n_blob, n_g, n_pop, n_counts, n_pairs, pop_ref = _UPDATE_HEAD.unpack_from(data)
    at = _UPDATE_HEAD.size
    size = at + n_eid + n_blob + n_g * (4 + 4 * (dim + 2) + 4 + 8) + 12 * (n_pop + n_counts) + 16 * n_pairs
    if len(data) != size:
        raise ValueError(f"{schema}: {len(data)} bytes, must be {size} for its counts")
    try:
        entry = data[at:at + n_eid].decode("utf-8")
        ids = json.loads(data[at + n_eid:at + n_eid + n_blob])
        if not isinstance(ids, list):
            raise TypeError(f"the ids must be a JSON list, not {type(ids).__name__}")
        "".join(ids)  # a TypeError unless every id is a string (checked in C)
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise ValueError(f"{schema}: the entry id or the ids are malformed: {exc}") from None
    at += n_eid + n_blob

    def take(dtype: np.dtype, count: int) -> np.ndarray:
        nonlocal at
        out = np.frombuffer(data, dtype=dtype, count=count, offset=at).astype(dtype.newbyteorder("="))
        at += count * dtype.itemsize
        return out

    def index(count: int, where: str) -> np.ndarray:
        idx = take(_I4, count).astype(np.int32)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(ids)):
            raise ValueError(f"{schema}: {where} must index the ids")
        return idx

    g_idx = index(n_g, "mf.items")
    grad = take(_F4, n_g * (dim + 2)).reshape(n_g, dim + 2)
    ex_b, pos_w = take(_F4, n_g), take(_F8, n_g)
    u = ItemUpdate(ItemGradients([ids[j] for j in g_idx.tolist()], grad, ex_b, pos_w), ids)
    u.pop_ref = pop_ref
    u.pop_idx, u.pop_w = index(n_pop, "pop.items"), take(_F8, n_pop)
    u.count_idx, u.count_w = index(n_counts, "counts.items"), take(_F8, n_counts)
    u.pair_a, u.pair_b = index(n_pairs, "pairs.a"), index(n_pairs, "pairs.b")
    u.pair_w = take(_F8, n_pairs)
    return entry, u


def encode_init(item_id: str, categories: list[str]) -> bytes:
    return json.dumps({"schema": "item-init-v1", "item_id": item_id, "categories": categories},
                      separators=(",", ":")).encode()


def decode_update(data: bytes) -> tuple[str, ItemUpdate | ItemInit]:
    """An item-updates message: (entry id, an update or a new item's categories); ValueError if malformed."""
    if isinstance(data, (bytes, bytearray)) and data[:4] == _UPDATE_MAGIC:
        return _decode_binary_update(bytes(data))
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"item-updates message: not JSON: {exc}") from exc
    schema = body.get("schema") if isinstance(body, dict) else None
    if schema == "item-init-v1":
        item, cats = body.get("item_id"), body.get("categories")
        if not isinstance(item, str) or not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise ValueError("item-init-v1: item_id must be a string and categories a list of strings")
        init = ItemInit(item, cats)
        return init.entry_id, init
    if schema != "item-update-v2":
        raise ValueError(f"item-updates message: item-update-v3 (binary), or a JSON object with \"schema\" "
                         f"item-update-v2 or item-init-v1 expected, got {schema!r}")
    entry, dim, ids = body.get("id"), body.get("dim"), body.get("ids")
    if not isinstance(entry, str) or not isinstance(dim, int) or not isinstance(ids, list) \
            or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{schema}: id must be a string, dim an integer and ids a list of strings")
    empty = ItemUpdate.empty(dim)
    u = ItemUpdate(empty.grads, ids)
    try:
        mf = _part(body, "mf", schema)
        if mf:
            idx = _index(mf, "items", len(ids), schema, "mf")
            m = len(idx)
            u.grads = ItemGradients([ids[j] for j in idx.tolist()],
                                    _array(mf, "grad", _F4, m * (dim + 2), schema, "mf").reshape(m, dim + 2),
                                    _array(mf, "ex_b", _F4, m, schema, "mf"), _array(mf, "pos_w", _F8, m, schema, "mf"))
        pop = _part(body, "pop", schema)
        if pop:
            u.pop_idx = _index(pop, "items", len(ids), schema, "pop")
            u.pop_w = _array(pop, "w", _F8, len(u.pop_idx), schema, "pop")
            u.pop_ref = float(pop.get("ref", 0.0))
        counts = _part(body, "counts", schema)
        if counts:
            u.count_idx = _index(counts, "items", len(ids), schema, "counts")
            u.count_w = _array(counts, "w", _F8, len(u.count_idx), schema, "counts")
        pairs = _part(body, "pairs", schema)
        if pairs:
            u.pair_a = _index(pairs, "a", len(ids), schema, "pairs")
            u.pair_b = _index(pairs, "b", len(ids), schema, "pairs")
            if len(u.pair_b) != len(u.pair_a):
                raise ValueError(f"{schema}: pairs.a and pairs.b must have the same length")
            u.pair_w = _array(pairs, "w", _F8, len(u.pair_a), schema, "pairs")
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"{schema}: malformed: {exc}") from exc
    return entry, u


_ROW_MAGIC = b"SRR3"
_ROW_HEAD = struct.Struct("<4sHIHq8d")


def encode_row(row: ItemRow) -> bytes:
    """An item row as an item-factors message (item-row-v3, see the module docstring), encoded once
    per row (the owner's commit and its publishing send the same bytes)."""
    if row.wire is not None:
        return row.wire
    s = row.mf
    item = row.item_id.encode("utf-8")
    keys = np.ascontiguousarray(row.neighbour_keys, dtype="<i8")
    head = _ROW_HEAD.pack(_ROW_MAGIC, len(s.vector), len(keys), len(item), int(s.version), float(s.bias),
                          float(s.acc), float(s.acc_b), float(s.pop), float(s.updated_at), float(row.n),
                          float(row.popularity), float(row.popularity_ref))
    row.wire = b"".join((head, item, np.asarray(s.vector, dtype=_F4).tobytes(), keys.tobytes(),
                         np.asarray(row.counts, dtype=_F4).tobytes()))
    return row.wire


def decode_row(data: bytes) -> ItemRow:
    """An item-factors message; ValueError if malformed."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < _ROW_HEAD.size or data[:4] != _ROW_MAGIC:
        raise ValueError("item-row-v3: a binary row starting with b'SRR3' expected")
    magic, dim, n_nbrs, id_len, updates, bias, acc, acc_b, pop, updated_at, n, gpop, gpop_ref = \
        _ROW_HEAD.unpack_from(data)
    at = _ROW_HEAD.size
    size = at + id_len + 4 * dim + 12 * n_nbrs
    if len(data) != size:
        raise ValueError(f"item-row-v3: {len(data)} bytes, must be {size} for dim {dim} and {n_nbrs} neighbours")
    try:
        item_id = bytes(data[at:at + id_len]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"item-row-v3: the item id is not UTF-8: {exc}") from None
    at += id_len
    vec = np.frombuffer(data, dtype=_F4, count=dim, offset=at).astype(np.float32)
    at += 4 * dim
    keys = np.frombuffer(data, dtype="<i8", count=n_nbrs, offset=at).astype(np.int64)
    counts = np.frombuffer(data, dtype=_F4, count=n_nbrs, offset=at + 8 * n_nbrs).astype(np.float32)
    state = ItemState(item_id, vec, bias, acc, acc_b, pop, int(updates), updated_at)
    return ItemRow(item_id, state, n, keys, counts, gpop, gpop_ref)


def row_from_fields(item_id: str, f: dict) -> ItemRow:
    """The row in an item's Redis hash (its ``row`` field: keys and values as str or bytes, as the
    owner's commit wrote them); ValueError if malformed or of another item."""
    blob = f.get("row", f.get(b"row"))
    if blob is None:
        raise ValueError(f"item row {item_id!r}: no 'row' field")
    row = decode_row(blob if isinstance(blob, bytes) else blob.encode("latin-1"))
    if row.item_id != item_id:
        raise ValueError(f"item row {item_id!r}: the stored row is of {row.item_id!r}")
    return row
