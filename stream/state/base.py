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

**Erasure** (:meth:`StateStore.erase`): a user's every key goes, and a marker, keyed by a keyed
hash of the user id (:mod:`stream.state.tokens`), keeps the erasure's ts for a bounded time. A
load hands each user's marker out with their record (:attr:`UserRecord.erased_at`), the engine
drops their events at or before it, and a commit is refused when a marker of a user it writes
appeared or changed since the load. A profile at or before the marker is not stored. Event ids
are kept as tokens too (the dedupe window), so an erasure leaves no id behind there either.

Everything else (model logic, decay arithmetic, guard rules, capping) is the engine's and the
models'; a store only keeps and returns data. :mod:`stream.state.memory` keeps it in dicts
(``evaluate``, tests), :mod:`stream.state.redis` in Redis (the worker), where the commit is
one Lua script call.

The item side has its own calls (the owner of an item-updates partition), shaped like the user
side's dedupe: :meth:`StateStore.owner_offset` (the last item-updates offset the partition's owner
applied: a redelivery is at or below it), :meth:`StateStore.owner_applied` (which update ids were
applied within the owner's dedupe window: an outbox resend comes at a new offset with the same
id) and :meth:`StateStore.owner_commit` (rows, the updates' ids and the new offset, atomically,
refused when the offset moved or an id was applied meanwhile), :meth:`StateStore.owner_rows` to
take a partition over; and the outbox of updates committed by the user side and not yet
delivered.
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
           "StateStore", "Profile", "Position", "Erasure"]


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
    erased_at: float | None = None  # as loaded: the ts of the user's erasure marker (None: none)

    def copy(self) -> "UserRecord":
        row = None if self.row is None else self.row.copy()
        beh = None if self.behaviour is None else UserBehaviour(**self.behaviour.__dict__)
        return UserRecord(self.user_id, row, list(self.history), self.seen.copy(), self.events, self.profile_segment,
                          beh, self.erased_at)

    def fork(self) -> "UserRecord":
        """A copy whose history, seen items and counter may change; the row and the behaviour are
        shared (the engine replaces them whole, never changes them in place)."""
        return UserRecord(self.user_id, self.row, list(self.history), self.seen.copy(), self.events,
                          self.profile_segment, self.behaviour, self.erased_at)


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
    erasures: dict[str, float | None] = field(default_factory=dict)  # user -> erasure marker as loaded (checked)
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
class Erasure:
    """What :meth:`StateStore.erase` did.

    ``status``: ``"erased"`` (the user's keys deleted, the marker set), or ``"already_erased"``
    (a marker at or after this ts was there: a repeated request; nothing deleted, since what the
    user has now came after that erasure); ``erased_at``: the marker's ts now; ``found``: the
    user had state that was deleted."""

    status: str
    erased_at: float
    found: bool


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
    async def put_profile(self, profile: Profile) -> tuple[bool, str | None]:
        """Store a profile (replacing the user's previous one), atomically unless the user's erasure
        marker is at or after its ts; returns (stored, the previous segment)."""

    @abstractmethod
    async def delete_profile(self, user_id: str) -> None:
        """A tombstone on the users topic."""

    @abstractmethod
    async def put_item(self, item_id: str, metadata: dict[str, str] | None) -> None:
        """Store an item's catalogue metadata (None: delete it)."""

    # -- erasure --------------------------------------------------------------------------
    @abstractmethod
    async def erase(self, user_id: str, ts: float) -> Erasure:
        """Erase a user as of event time ``ts``, atomically: delete every key named by them
        (:meth:`stream.state.keys.Keys.per_user`) and keep a marker with ``ts`` for the store's
        marker lifetime; a marker at or after ``ts`` already there makes it a repeat (see
        :class:`Erasure`)."""

    # -- serving ------------------------------------------------------------------------
    @abstractmethod
    async def last_lists(self, user_ids: list[str]) -> dict[str, bytes | None]:
        """The last list pushed to each user (the payload), None when none."""

    @abstractmethod
    async def save_lists(self, lists: dict[str, bytes]) -> None:
        """Remember the lists just pushed; a user without a record (erased meanwhile) gets none."""

    @abstractmethod
    async def coverage(self) -> tuple[int, int]:
        """(distinct items served in trials, distinct items seen): estimates in Redis."""

    # -- the item side ------------------------------------------------------------------
    @abstractmethod
    async def owner_offset(self, partition: int) -> int | None:
        """The last item-updates offset of ``partition`` its owner applied (None: none yet)."""

    @abstractmethod
    async def owner_applied(self, partition: int, entry_ids: list[str]) -> list[bool]:
        """Which of these item updates the owner of ``partition`` applied within its dedupe window
        (the store's ``owner_dedupe_seconds`` at least; older ids are forgotten)."""

    @abstractmethod
    async def owner_commit(self, partition: int, entry_ids: list[str], rows: list[ItemRow],
                           mark: tuple[int | None, int] | None = None) -> None:
        """As the owner of ``partition``: the rows these updates changed, the updates' ids as
        applied, and, with ``mark`` = (offset as loaded, new offset), the partition's last applied
        offset, atomically; :class:`Conflict`, writing nothing, when one of the ids was applied
        (within the window) or the offset moved from the one loaded meanwhile."""

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
