"""The user side of the MF model inside the worker, over Redis (free of Faust).

Per micro-batch (one Redis round trip to load, the commit rides on the ingest pipeline's
transaction):

    load     which event ids were claimed before, the users' model rows, their seen items
    learn    the users' rows step; item gradients grouped by the items' owner partitions
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from stream.contract import Event
from stream.agents.messages import encode_gradients
from stream.models.sharded import ItemGradients, ShardedMF, UserState
from stream.signals import signal_weight
from stream.store.keys import Keys
from stream.store.userstate import LOAD_BATCH_LUA, USER_FIELDS, parse_user

__all__ = ["Learner", "BatchView", "Step"]


@dataclass
class BatchView:
    """What Redis holds for a batch before it is applied."""

    claimed: list[bool]  # per event: its id was applied before
    states: dict[str, UserState | None]  # per user: model row (None: none yet)
    seen: dict[str, list[str]]  # per user: items not to recommend again
    segments: dict[str, str | None] = field(default_factory=dict)  # per user: the profile's segment, if any
    behaviour: dict[str, list] = field(default_factory=dict)  # per user: behaviour fields (when asked)

    def fresh(self, events: list[Event]) -> list[Event]:
        """Events whose id was not applied before, each id once (the first in the batch)."""
        out, ids = [], set()
        for ev, claimed in zip(events, self.claimed):
            if not claimed and ev.event_id not in ids:
                ids.add(ev.event_id)
                out.append(ev)
        return out


@dataclass
class Step:
    states: list[UserState] = field(default_factory=list)  # rows that changed, to write
    gradients: dict[int, ItemGradients] = field(default_factory=dict)  # owner partition -> gradients
    loss: float | None = None
    learned: int = 0


class Learner:
    def __init__(self, mf: ShardedMF, redis, keys: Keys, *, partitions: int,
                 clock=time.time, source: str = "worker", behaviour_fields: tuple[str, ...] = ()) -> None:
        self.mf = mf
        self.behaviour_fields = behaviour_fields
        self.source = source
        self.redis = redis
        self.keys = keys
        self.partitions = partitions
        self.clock = clock
        # redis-py's script object runs EVALSHA and loads the script again after a NOSCRIPT
        self._load = redis.register_script(LOAD_BATCH_LUA)

    async def load(self, events: list[Event], user_ids: list[str]) -> BatchView:
        """One script call: claimed event ids, the users' rows, seen items and segments."""
        arg = json.dumps({"prefix": self.keys.prefix, "fields": USER_FIELDS, "events": [ev.event_id for ev in events],
                          "users": user_ids, "behaviour": list(self.behaviour_fields)}, separators=(",", ":"))
        claimed, rows, seen, segments, behaviour = await self._load(args=[arg])
        k = self.mf.k
        return BatchView(
            [c == "1" for c in (claimed.decode() if isinstance(claimed, bytes) else claimed)],
            {uid: parse_user(uid, values, k) for uid, values in zip(user_ids, rows)},
            {uid: [x.decode() for x in items] for uid, items in zip(user_ids, seen)},
            {uid: (seg.decode() if seg else None) for uid, seg in zip(user_ids, segments)},
            {uid: [v.decode() if v is not None else None for v in values] for uid, values in zip(user_ids, behaviour)},
        )

    def learn(self, events: list[Event], view: BatchView) -> Step:
        """One step on the rows of the batch's users (copies: ``view`` keeps the rows as loaded)."""
        step = Step()
        index: dict[str, int] = {}
        users: list[UserState] = []
        u, items, weights = [], [], []
        for ev in events:
            w = signal_weight(ev)
            if w == 0.0:
                continue
            j = index.get(ev.user_id)
            if j is None:
                j = index[ev.user_id] = len(users)
                old = view.states.get(ev.user_id)
                users.append(self.mf.new_user(ev.user_id) if old is None else
                             UserState(**{**old.__dict__, "vector": old.vector.copy()}))
            u.append(j)
            items.append(ev.item_id)
            weights.append(w)
        if not u:
            return step
        grads = self.mf.learn_users(users, u, items, weights, now=self.clock())
        step.states = users
        step.gradients = grads.split(self.partitions)
        step.loss = self.mf.last_loss
        step.learned = len(u)
        return step

    def encode_gradients(self, grads: ItemGradients) -> bytes:
        return encode_gradients(grads, self.mf.k, self.source)
