"""The engine's state behind one small interface, with an in-memory and a Redis implementation.

A batch step talks to its state twice (quix-streams' ``state/base`` shape, in spirit):

* :meth:`StateStore.load`: what the batch needs, as plain records: what was applied before
  (the last offset applied of each Kafka partition, and which event ids were applied within
  the dedupe window), the batch's users (:class:`UserRecord`), the segments' shared state
  (:class:`SharedState`: re-ranker weights, guards, popularity references) and the
  behaviour clusterer;
* :meth:`StateStore.commit`: the batch's effects (:class:`Commit`), all or nothing. A commit
  first checks what it was computed from (the applied offsets as loaded, the event ids still
  unclaimed, each guard and popularity reference as loaded, the clusterer's seeding as
  loaded) and raises
  :class:`Conflict` without writing anything when another writer got there first; the
  engine then loads again and recomputes.

Everything else (model logic, decay arithmetic, guard rules, capping) is the engine's and the
models'; a store only keeps and returns data. :mod:`stream.state.memory` keeps it in dicts
(``evaluate``, tests), :mod:`stream.state.redis` in Redis (the worker), where the commit is
one Lua script call.

The item side has its own two calls (the owner of an item-updates partition):
:meth:`StateStore.owner_applied` and :meth:`StateStore.owner_commit` (rows and the ids of
the updates they contain, atomically), :meth:`StateStore.owner_rows` to take a partition
over; and the outbox of updates committed by the user side and not yet delivered.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from stream.models.items import ItemRow
from stream.models.segments.behaviour import BehaviourChanges, Clusterer, UserBehaviour
from stream.models.sharded import UserState
from stream.state.seen import Seen

__all__ = ["UserRecord", "SharedState", "Loaded", "PopularityChange", "OutboxEntry", "Commit", "Conflict",
           "StateStore", "Profile", "Position"]


@dataclass
class UserRecord:
    """One user's partition-owned state."""

    user_id: str
    row: UserState | None = None  # the MF row (None: none yet)
    history: list[str] = field(default_factory=list)  # recent positives, oldest first
    seen: Seen = field(default_factory=Seen)  # item -> last event time: not recommended again
    events: int = 0  # events applied, of any type
    profile_segment: str | None = None  # the profile's segment, if it names one
    behaviour: UserBehaviour | None = None

    def copy(self) -> "UserRecord":
        row = None if self.row is None else self.row.copy()
        beh = None if self.behaviour is None else UserBehaviour(**self.behaviour.__dict__)
        return UserRecord(self.user_id, row, list(self.history), self.seen.copy(), self.events, self.profile_segment,
                          beh)

    def fork(self) -> "UserRecord":
        """A copy whose history, seen items and counter may change; the row and the behaviour are
        shared (the engine replaces them whole, never changes them in place)."""
        return UserRecord(self.user_id, self.row, list(self.history), self.seen.copy(), self.events,
                          self.profile_segment, self.behaviour)


@dataclass
class SharedState:
    """What several workers share per segment, as loaded for a batch."""

    layers: dict[str, dict[str, float]] = field(default_factory=dict)  # layer -> weight changes
    guards: dict[str, dict[str, str] | None] = field(default_factory=dict)  # segment -> guard state fields
    popularity_refs: dict[str, float | None] = field(default_factory=dict)  # segment -> reference time

    def merge(self, other: "SharedState") -> None:
        self.layers.update(other.layers)
        self.guards.update(other.guards)
        self.popularity_refs.update(other.popularity_refs)


#: Where an event came from: (topic, partition, offset); None for events that did not come
#: through Kafka (offline evaluation, tests).
Position = tuple[str, int, int]


@dataclass
class Loaded:
    claimed: list[bool]  # per event id asked for: applied before (within the id window)
    users: dict[str, UserRecord]
    shared: SharedState
    clusterer: Clusterer | None  # None when behaviour segments are off
    seeded: bool = False  # the clusterer's centres were seeded when loaded
    marks: dict[tuple[str, int], int | None] = field(default_factory=dict)  # last applied offset per partition


@dataclass
class PopularityChange:
    """A batch's change of one segment's popularity (see stream.models.popularity.plan)."""

    ref_before: float | None
    ref_after: float
    factor: float | None  # multiply every stored score first (a rescale), or None
    increments: dict[str, float]


class OutboxEntry:
    """An item update for one owner partition, committed with its batch, delivered after.

    ``payload``: the message bytes, or a function that makes them (encoded only when a store or
    a bus needs them); ``update``: the decoded update, when the entry was made in this process
    (a bus that delivers in process skips decoding); never stored.
    """

    __slots__ = ("entry_id", "partition", "_payload", "update")

    def __init__(self, entry_id: str, partition: int, payload: bytes | Callable[[], bytes], update: Any = None) -> None:
        self.entry_id = entry_id
        self.partition = partition
        self._payload = payload
        self.update = update

    @property
    def payload(self) -> bytes:
        if callable(self._payload):
            self._payload = self._payload()
        return self._payload

    def __repr__(self) -> str:
        return f"OutboxEntry({self.entry_id!r}, partition={self.partition})"


@dataclass
class Commit:
    """A batch's effects, applied all or nothing."""

    event_ids: list[str] = field(default_factory=list)  # claimed now (each must be unclaimed)
    marks: dict[tuple[str, int], tuple[int | None, int]] = field(default_factory=dict)  # (as loaded, new)
    users: dict[str, UserRecord] = field(default_factory=dict)  # the new state of users the batch changed
    popularity: dict[str, PopularityChange] = field(default_factory=dict)
    layers: dict[str, dict[str, float]] = field(default_factory=dict)  # weight changes to add
    guards: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)  # segment -> (version loaded, state)
    behaviour: BehaviourChanges | None = None
    seeded_before: bool = False  # the clusterer's seeding as loaded (checked)
    stats: dict[str, int] = field(default_factory=dict)  # counter -> increment
    outbox: list[OutboxEntry] = field(default_factory=list)
    users_seen: list[str] = field(default_factory=list)  # distinct-count sketches
    items_seen: list[str] = field(default_factory=list)
    recommended: list[str] = field(default_factory=list)


class Conflict(RuntimeError):
    """Another writer changed what a commit was computed from; nothing was written."""


@dataclass(frozen=True)
class Profile:
    """A user profile as the users topic carries it, with its resolved segment."""

    user_id: str
    attributes: dict[str, str]
    segment: str
    ts: float


class StateStore(ABC):
    """The state of the engine (see the module docstring). Every method is a coroutine."""

    # -- the batch step ---------------------------------------------------------------
    @abstractmethod
    async def load(self, event_ids: list[str], user_ids: list[str], segments: Iterable[str],
                   clusterer: bool, partitions: Iterable[tuple[str, int]] = ()) -> Loaded:
        """Claims of ``event_ids``, records of ``user_ids``, the shared state of ``segments``
        (and of the shared re-ranker layer), the clusterer when ``clusterer``, and the last
        offset applied of each (topic, partition) in ``partitions``."""

    @abstractmethod
    async def load_segments(self, segments: Iterable[str]) -> SharedState:
        """The shared state of more segments (those a batch found its users in)."""

    @abstractmethod
    async def commit(self, commit: Commit) -> None:
        """Apply a batch's effects atomically, or raise :class:`Conflict` and apply nothing."""

    @abstractmethod
    async def users(self, user_ids: list[str]) -> dict[str, UserRecord]:
        """Users' records (a user never seen gets an empty one)."""

    @abstractmethod
    async def segment_scores(self, wanted: dict[str, list[str]]) -> dict[str, np.ndarray]:
        """Per segment, the stored popularity score of each item asked for (0 when absent)."""

    @abstractmethod
    async def segment_top(self, wanted: dict[str, int]) -> dict[str, list[tuple[str, float]]]:
        """Per segment, its ``n`` most popular items with their scores, best first (ties: the
        item id, descending, as Redis' ZREVRANGE has them)."""

    # -- profiles and the catalogue ----------------------------------------------------
    @abstractmethod
    async def profile_segments(self) -> set[str]:
        """The profile segments named so far."""

    @abstractmethod
    async def put_profile(self, profile: Profile) -> str | None:
        """Store a profile (replacing the user's previous one); returns the previous segment."""

    @abstractmethod
    async def delete_profile(self, user_id: str) -> None:
        """A tombstone on the users topic."""

    @abstractmethod
    async def put_item(self, item_id: str, metadata: dict[str, str] | None) -> None:
        """Store an item's catalogue metadata (None: delete it)."""

    # -- serving ------------------------------------------------------------------------
    @abstractmethod
    async def last_lists(self, user_ids: list[str]) -> dict[str, bytes | None]:
        """The last list pushed to each user (the payload), None when none."""

    @abstractmethod
    async def save_lists(self, lists: dict[str, bytes]) -> None:
        """Remember the lists just pushed."""

    @abstractmethod
    async def coverage(self) -> tuple[int, int]:
        """(distinct items served in trials, distinct items seen): estimates in Redis."""

    # -- the item side ------------------------------------------------------------------
    @abstractmethod
    async def owner_applied(self, entry_ids: list[str]) -> list[bool]:
        """Which of these item updates their owner applied already."""

    @abstractmethod
    async def owner_commit(self, partition: int, entry_ids: list[str], rows: list[ItemRow]) -> None:
        """As the owner of ``partition``: the rows these updates changed, and the updates' ids as
        applied, atomically; :class:`Conflict` when one of the ids was applied meanwhile."""

    @abstractmethod
    async def owner_rows(self, partition: int) -> list[ItemRow]:
        """Every row the owner of ``partition`` committed (to take the partition over)."""

    @abstractmethod
    async def outbox_pending(self, older_than: float) -> list[OutboxEntry]:
        """Item updates committed before ``older_than`` (epoch seconds) and still undelivered."""

    @abstractmethod
    async def outbox_done(self, entry_ids: list[str]) -> None:
        """These updates were delivered to their owners."""

    async def close(self) -> None:
        """Release connections (nothing by default)."""


def text(x: Any) -> str:
    """A Redis reply value as text."""
    return x.decode() if isinstance(x, bytes) else str(x)
