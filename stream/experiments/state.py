"""Where experiments keep their state: assignments, per-user counters, served lists, looks.

One interface, :class:`ExperimentState`, with an in-memory implementation (tests, tools) and a
Redis one (the worker; keys in :mod:`stream.state.keys`, scripts ``assign.lua``,
``served_lists.lua`` and ``attribute.lua``). Values are computed in Python (:mod:`stream.experiments.attribution`);
the state only reads them and stores them all or nothing.

Users are named by their token (HMAC of the user id, :meth:`stream.state.tokens.Tokens.user`),
so neither a served list's record nor an experiment's counters hold a user id. An erasure
(:meth:`ExperimentState.forget`) deletes the user's counters in every experiment; what they
added to the aggregates (assignment counts, Prometheus) stays.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from typing import Callable

from stream.state.keys import Keys
from stream.state.scripts import Scripts
from stream.state.tokens import Tokens

__all__ = ["ExperimentState", "MemoryExperiments", "RedisExperiments", "Member"]

#: (experiment, variant, user token)
Member = tuple[str, str, str]


class ExperimentState(ABC):
    """The state experiments read and write (see the module docstring)."""

    @abstractmethod
    async def tokens(self) -> Tokens:
        """The keyed hashes users and events are named by."""

    @abstractmethod
    async def members(self, queries: list[Member]) -> list[bool]:
        """Whether each user token is assigned to that experiment's variant."""

    @abstractmethod
    async def assign(self, entries: list[tuple[str, str, str, bytes]]) -> list[bool]:
        """(experiment, variant, user token, initial counters): each assigned unless they were
        already; True where assigned now (and the variant's assignment count went up)."""

    @abstractmethod
    async def save_lists(self, lists: dict[str, bytes], ttl: int) -> None:
        """Served lists' records by rec_id, kept ``ttl`` seconds (the join window)."""

    @abstractmethod
    async def load(self, rec_ids: list[str], members: list[Member]) -> tuple[list[bytes | None], list[bytes | None]]:
        """The lists' records and the members' counters, as they are now (None: none)."""

    @abstractmethod
    async def commit(self, lists: list[tuple[str, bytes | None, bytes]],
                     counters: list[tuple[Member, bytes | None, bytes]]) -> bool:
        """Store (rec_id, as loaded, new) and (member, as loaded, new), all or nothing, if every
        one is still as loaded; False (nothing stored) when one is not: load again."""

    @abstractmethod
    async def assigned(self, experiment: str) -> dict[str, int]:
        """Users assigned so far, per variant."""

    @abstractmethod
    async def counters(self, experiment: str, variant: str) -> list[bytes]:
        """Every assigned user's counters in a variant (in no particular order)."""

    @abstractmethod
    async def add_look(self, experiment: str, look: bytes) -> None:
        """Remember one look of the report."""

    @abstractmethod
    async def looks(self, experiment: str) -> list[bytes]:
        """The looks so far, oldest first."""

    @abstractmethod
    async def forget(self, user_id: str, experiments: dict[str, list[str]]) -> None:
        """An erasure: the user's counters in every variant of these experiments (name -> variants)."""


class MemoryExperiments(ExperimentState):
    """Dicts, with a wall clock for the lists' join window."""

    def __init__(self, key: bytes = b"memory-experiments-key", clock: Callable[[], float] = time.time) -> None:
        self._tokens = Tokens(key)
        self.clock = clock
        self.users: dict[tuple[str, str], dict[str, bytes]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.lists: dict[str, tuple[bytes, float]] = {}
        self._looks: dict[str, list[bytes]] = {}

    async def tokens(self) -> Tokens:
        return self._tokens

    async def members(self, queries: list[Member]) -> list[bool]:
        return [tok in self.users.get((e, v), {}) for e, v, tok in queries]

    async def assign(self, entries):
        out = []
        for e, v, tok, value in entries:
            hashed = self.users.setdefault((e, v), {})
            new = tok not in hashed
            if new:
                hashed[tok] = value
                self.counts.setdefault(e, {})[v] = self.counts.get(e, {}).get(v, 0) + 1
            out.append(new)
        return out

    def _list(self, rec_id: str) -> bytes | None:
        got = self.lists.get(rec_id)
        if got is None:
            return None
        if got[1] <= self.clock():
            del self.lists[rec_id]
            return None
        return got[0]

    async def save_lists(self, lists: dict[str, bytes], ttl: int) -> None:
        until = self.clock() + ttl
        self.lists.update({r: (value, until) for r, value in lists.items()})

    async def load(self, rec_ids, members):
        return ([self._list(r) for r in rec_ids], [self.users.get((e, v), {}).get(tok) for e, v, tok in members])

    async def commit(self, lists, counters) -> bool:
        if any(self._list(r) != old for r, old, _ in lists):
            return False
        if any(self.users.get((e, v), {}).get(tok) != old for (e, v, tok), old, _ in counters):
            return False
        for r, _, new in lists:
            self.lists[r] = (new, self.lists[r][1])
        for (e, v, tok), _, new in counters:
            self.users.setdefault((e, v), {})[tok] = new
        return True

    async def assigned(self, experiment: str) -> dict[str, int]:
        return dict(self.counts.get(experiment, {}))

    async def counters(self, experiment: str, variant: str) -> list[bytes]:
        return list(self.users.get((experiment, variant), {}).values())

    async def add_look(self, experiment: str, look: bytes) -> None:
        self._looks.setdefault(experiment, []).append(look)

    async def looks(self, experiment: str) -> list[bytes]:
        return list(self._looks.get(experiment, []))

    async def forget(self, user_id: str, experiments: dict[str, list[str]]) -> None:
        tok = self._tokens.user(user_id)
        for e, variants in experiments.items():
            for v in variants:
                self.users.get((e, v), {}).pop(tok, None)


class RedisExperiments(ExperimentState):
    """Redis (see :mod:`stream.state.keys` for the keys). ``tokens``: the worker state's
    (:meth:`stream.state.redis.RedisState.tokens`), so erasure and experiments hash alike."""

    def __init__(self, redis, keys: Keys, tokens: Callable, scripts: Scripts | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self._tokens = tokens
        self.scripts = scripts or Scripts(redis, keys.slot)

    @classmethod
    def beside(cls, state) -> "RedisExperiments":
        """Beside the worker's :class:`~stream.state.redis.RedisState`: its client, keys, tokens, scripts."""
        return cls(state.redis, state.keys, state.tokens, state.scripts)

    async def tokens(self) -> Tokens:
        return await self._tokens()

    async def members(self, queries: list[Member]) -> list[bool]:
        if not queries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for e, v, tok in queries:
            pipe.hexists(self.keys.experiment_users(e, v), tok)
        return [bool(x) for x in await pipe.execute()]

    async def assign(self, entries):
        if not entries:
            return []
        k = self.keys
        arg = [[k.experiment_users(e, v), tok, value.decode(), k.experiment_assigned(e), v] for e, v, tok, value in entries]
        return [bool(int(x)) for x in await self.scripts.assign(args=[json.dumps(arg, separators=(",", ":"))])]

    async def save_lists(self, lists: dict[str, bytes], ttl: int) -> None:
        if lists:
            key = self.keys.served_list
            await self.scripts.served_lists(args=[int(ttl), *(x for rec_id, value in lists.items()
                                                               for x in (key(rec_id), value))])

    async def load(self, rec_ids, members):
        pipe = self.redis.pipeline(transaction=False)
        if rec_ids:
            # as a command: a cluster client's pipeline refuses mget(), though its keys share a slot here
            pipe.execute_command("MGET", *(self.keys.served_list(r) for r in rec_ids))
        for e, v, tok in members:
            pipe.hget(self.keys.experiment_users(e, v), tok)
        got = await pipe.execute() if (rec_ids or members) else []
        lists = list(got[0]) if rec_ids else []
        return lists, list(got[1:] if rec_ids else got)

    async def commit(self, lists, counters) -> bool:
        if not lists and not counters:
            return True
        k = self.keys
        arg = {"lists": [k.served_list(r) for r, _, _ in lists],
               "users": [[k.experiment_users(e, v), tok] for (e, v, tok), _, _ in counters]}
        values: list[bytes] = []
        for _, old, new in [*lists, *counters]:
            values += [old or b"", new]
        return bool(int(await self.scripts.attribute(args=[json.dumps(arg, separators=(",", ":")), *values])))

    async def assigned(self, experiment: str) -> dict[str, int]:
        raw = await self.redis.hgetall(self.keys.experiment_assigned(experiment))
        return {(v.decode() if isinstance(v, bytes) else v): int(n) for v, n in raw.items()}

    async def counters(self, experiment: str, variant: str) -> list[bytes]:
        out = []
        async for _, value in self.redis.hscan_iter(self.keys.experiment_users(experiment, variant), count=1000):
            out.append(value)
        return out

    async def add_look(self, experiment: str, look: bytes) -> None:
        await self.redis.rpush(self.keys.experiment_looks(experiment), look)

    async def looks(self, experiment: str) -> list[bytes]:
        return list(await self.redis.lrange(self.keys.experiment_looks(experiment), 0, -1))

    async def forget(self, user_id: str, experiments: dict[str, list[str]]) -> None:
        tok = (await self.tokens()).user(user_id)
        pipe = self.redis.pipeline(transaction=True)
        for e, variants in experiments.items():
            for v in variants:
                pipe.hdel(self.keys.experiment_users(e, v), tok)
        await pipe.execute()
