"""The engine: one batch step for ``streamrec evaluate`` and the worker, free of Faust.

    order by event time -> load state -> triage -> walk the events in order -> score the trials
    -> learn -> commit -> deliver

* **load** (:meth:`StateStore.load`): which event ids were applied before, the batch's users
  (with their erasure markers), the segments' shared state, the behaviour clusterer;
* **triage** (:func:`stream.engine.batch.triage`): duplicates, and an erased user's events at or
  before their erasure (dropped), are not applied;
* **walk** (:func:`stream.engine.batch.walk`): each user's history and seen items event by
  event; the moments before the trials (and the positives the re-rankers learn from);
* **score** (:class:`stream.engine.rank.Ranking`): each moment ranked as the user would have
  been served then;
* **learn** (:func:`stream.engine.learn.learn`): every model's step, as a
  :class:`~stream.state.base.Commit` and an item update;
* **commit**: all or nothing; on a :class:`~stream.state.base.Conflict` (another writer got
  there first) the step starts again from a fresh load;
* **deliver**: the item updates, committed to the outbox with the batch, go to their owners
  (:mod:`stream.engine.items`); one that cannot be delivered now stays in the outbox and is
  sent again later.

Offline the state is :class:`~stream.state.memory.MemoryState` and the owner is in process
(:class:`~stream.engine.items.DirectBus`); in the worker, Redis and Kafka. The Faust agents
only feed batches in (stream/agents/).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from stream.contract import Event
from stream.engine.batch import explores, triage, walk
from stream.engine.config import EngineConfig
from stream.engine.items import ItemBus, outbox_entries
from stream.engine.learn import Learned, batch_seed, learn
from stream.engine.rank import Ranked, Ranking, View
from stream.engine.segpop import SegmentPopularity
from stream.engine.stages import OFF
from stream.models.items import ItemTable
from stream.models.rerank.features import COLUMNS
from stream.models.rerank.layers import SegmentLayers
from stream.models.segments.behaviour import BehaviourModel
from stream.models.segments.profile import OTHER, profile_segment
from stream.signals import event_order
from stream.state.base import Commit, Conflict, Loaded, Position, Profile, SharedState, StateStore, UserRecord

__all__ = ["Engine", "StepResult", "TrialOutcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialOutcome:
    """One prequential trial: what was served before the click, and whether it hit."""

    position: int  # of the event in its batch
    event: Event
    segment: str
    served: list[str]
    model: str
    glob_hit: bool  # the blend's top-k held the item
    seg_hit: bool | None  # the segment layer's top-k held it (None: no re-ranker for this user)
    shared_hit: bool | None = None  # the shared re-ranker layer's top-k held it (unguarded)

    @property
    def rank(self) -> int | None:
        """1-based position of the clicked item in the served list, None for a miss."""
        try:
            return self.served.index(self.event.item_id) + 1
        except ValueError:
            return None


@dataclass
class StepResult:
    """What a batch step did."""

    events: list[Event]
    fresh: list[bool]  # per event: applied now (else a duplicate, or erased)
    segments: dict[str, str]  # each user's segment at the batch's start
    trials: list[TrialOutcome]
    users: dict[str, UserRecord]  # the batch's users after it
    shared: SharedState  # the segments' shared state after the batch, as this step knows it
    learned: Learned
    attempts: int = 1  # 1 + the conflicts that made the step start again
    commit: Commit | None = field(default=None, repr=False)

    order: list[int] = field(default_factory=list)  # the input's positions, in the order applied (events)
    erased: list[bool] = field(default_factory=list)  # per event: dropped, its user erased at or after its ts

    @property
    def applied(self) -> int:
        return sum(self.fresh)

    @property
    def dropped(self) -> int:
        """Events of erased users, at or before their erasure: counted, not applied."""
        return sum(self.erased)

    @property
    def duplicates(self) -> int:
        return len(self.fresh) - self.applied - self.dropped


class Engine:
    """Learns and serves with one implementation of every model, over any :class:`StateStore`.

    Parameters
    ----------
    config
        :class:`~stream.engine.config.EngineConfig`.
    state
        Where the state lives (memory or Redis).
    table
        The item side this process holds (every row a copy, its owned rows authoritative).
    bus
        Delivers the batches' item updates to their owners.
    clock
        Wall-clock seconds (rows' ``updated_at``; exploration of served lists).
    experiments
        :class:`stream.experiments.serving.Serving`: users in an experiment are ranked with their
        variant's configuration (None: every user with ``config``).
    segment_popularity_seconds
        How long ranking keeps the segment popularity scores it read, brought up to date with
        this engine's own commits (:mod:`stream.engine.segpop`); 0: read them every time.
    """

    MAX_ATTEMPTS = 50

    def __init__(self, config: EngineConfig, state: StateStore, table: ItemTable, bus: ItemBus,
                 clock: Callable[[], float] = time.time, experiments=None,
                 segment_popularity_seconds: float = 0.0) -> None:
        self.config = config
        self.state = state
        self.table = table
        self.bus = bus
        self.clock = clock
        self.ranking = Ranking(config, table)
        self.behaviour = BehaviourModel(config.behaviour, table.mf.k) if config.behaviour is not None else None
        self.segmenter = config.profile_segmenter()
        self._segments: set[str] = set()  # segments whose shared state every batch loads
        self._profile_segments: set[str] = set()  # profile segments known to exist (the cap's count)
        self.stages = OFF  # where the step's time goes (stream.engine.stages; `streamrec bench step`)
        self.experiments = experiments  # stream.experiments.serving.Serving (None: no experiments)
        self.popularity = SegmentPopularity(state, segment_popularity_seconds, table)  # what ranking reads through

    # -- segments -------------------------------------------------------------------
    def segment_of(self, rec: UserRecord) -> str:
        """A user's segment: their profile's, else their behaviour segment, else the default."""
        default = self.config.default_segment
        if rec.profile_segment and rec.profile_segment != default:
            return rec.profile_segment
        if self.behaviour is not None and rec.behaviour is not None and rec.behaviour.segment:
            return rec.behaviour.segment
        return default

    async def _shared(self, loaded_shared: SharedState, segments) -> SharedState:
        missing = set(segments) - self._segments
        if missing:
            loaded_shared.merge(await self.state.load_segments(missing))
            self._segments |= missing
        return loaded_shared

    # -- the batch step ---------------------------------------------------------------
    async def step(self, events: list[Event], positions: list[Position] | None = None) -> StepResult:
        """Score, learn and commit one micro-batch of valid events, applied in event-time order
        (:func:`stream.signals.event_order`; ``StepResult.order`` says which input went where).

        ``positions``: each event's (topic, partition, offset) when it came through Kafka: an
        event at or below its partition's last applied offset is a redelivery, applied before
        (whatever its age); every event is also checked by its id (within the dedupe window). An
        event of an erased user at or before the erasure is dropped (``StepResult.erased``)."""
        order = event_order(events)
        events = [events[j] for j in order]
        if positions is not None:
            positions = [positions[j] for j in order]
        attempts = 0
        while True:
            attempts += 1
            try:
                result = await self._step(events, positions)
            except Conflict as exc:
                if attempts >= self.MAX_ATTEMPTS:
                    raise
                log.info("batch of %d events computed again (attempt %d): %s", len(events), attempts + 1, exc)
                continue
            result.attempts = attempts
            result.order = order
            try:
                with self.stages("owner"):
                    await self.bus.deliver(result.commit.outbox)
            except Exception as exc:  # committed: the outbox keeps them until they are delivered
                log.warning("item updates of a batch not delivered yet (%s: %s); they stay in the outbox",
                            type(exc).__name__, exc)
            return result

    async def _step(self, events: list[Event], positions: list[Position] | None) -> StepResult:
        cfg = self.config
        stages = self.stages
        ids = [ev.event_id for ev in events]
        users = sorted({ev.user_id for ev in events})
        with stages("load"):
            partitions = {(t, p) for t, p, _ in positions} if positions is not None else ()
            loaded: Loaded = await self.state.load(ids, users, sorted(self._segments), self.behaviour is not None,
                                                   partitions)
            marks = loaded.marks
            fresh, erased = triage(events, loaded.claimed, loaded.users, positions, marks)
            segments = {uid: self.segment_of(loaded.users[uid]) for uid in users}
            shared = await self._shared(loaded.shared, segments.values())
        with stages("score_trials"):
            batch = walk(events, fresh, loaded.users, segments, cfg)
            batch.dropped = sum(erased)
            if cfg.max_trials is not None and len(batch.moments) > cfg.max_trials:
                rng = np.random.default_rng(batch_seed(ids))
                keep = np.sort(rng.choice(len(batch.moments), size=cfg.max_trials, replace=False))
                batch.moments = [batch.moments[j] for j in keep.tolist()]
            layers = SegmentLayers(COLUMNS, cfg.rerank, shared.layers) if cfg.rerank is not None else None
            assigned = await self._assigned(segments)
            views = [View(m.event.user_id, m.segment, loaded.users[m.event.user_id].row, m.history, m.seen, m.explore,
                          assigned.get(m.event.user_id)) for m in batch.moments]
            ranked = await self._rank(views, cfg.top_k, shared, layers) if views else []
            trials = self._outcomes(batch, ranked)
        with stages("learn"):
            now = self.clock()
            # items first named by this batch get rows only now: its trials could not rank them (no look-ahead)
            self.table.rows([ev.item_id for ev in events])
            commit, update, report = learn(batch, ranked, loaded, cfg, self.table, layers, self.behaviour, now)
            commit.outbox = outbox_entries(update, commit.event_ids, cfg.partitions, self.table.mf.k)
            if positions is not None:
                newest: dict[tuple[str, int], int] = {}
                for t, p, offset in positions:
                    newest[(t, p)] = max(offset, newest.get((t, p), -1))
                commit.marks = {tp: (marks.get(tp), max(o, marks.get(tp) or -1)) for tp, o in newest.items()}
        with stages("commit"):
            try:
                with self.popularity.writing():
                    await self.state.commit(commit)
            except Conflict:
                raise  # nothing was written
            except BaseException:
                self.popularity.clear()  # written or not: the kept scores are not known to be current
                raise
            self.popularity.committed(commit.popularity)
        after = SharedState({name: dict(w) for name, w in shared.layers.items()}, dict(shared.guards),
                            dict(shared.popularity_refs))
        for name, changes in commit.layers.items():
            weights = after.layers.setdefault(name, {})
            for f, d in changes.items():
                weights[f] = weights.get(f, 0.0) + d
        after.guards.update({seg: state for seg, (_, state) in commit.guards.items()})
        after.popularity_refs.update({seg: c.ref_after for seg, c in commit.popularity.items()})
        return StepResult(events, fresh, segments, trials, batch.after, after, report, commit=commit, erased=erased)

    def _outcomes(self, batch, ranked) -> list[TrialOutcome]:
        k = self.config.top_k
        return [TrialOutcome(m.position, m.event, m.segment, r.ids, r.model, m.event.item_id in r.glob,
                             None if r.seg is None else m.event.item_id in r.seg,
                             None if r.candidates is None else self.table.get(m.event.item_id) in
                             r.candidates.rows[np.argsort(-r.candidates.shared, kind="stable")[:k]])
                for m, r in zip(batch.moments, ranked) if m.trial]

    # -- serving ----------------------------------------------------------------------
    async def _assigned(self, segments: dict[str, str]) -> dict:
        """Each user's (experiment, variant) or None (no experiments: {})."""
        return {} if self.experiments is None else await self.experiments.assign(segments)

    async def _rank(self, views: list[View], k: int, shared: SharedState, layers, reasons: bool = False) -> list[Ranked]:
        state = self.popularity
        state.sync(shared.popularity_refs)
        if self.experiments is None:
            return await self.ranking.rank(views, k, shared, layers, state, reasons=reasons)
        return await self.experiments.rank(self.ranking, views, k, shared, layers, state, reasons=reasons)

    async def rank_records(self, records: dict[str, UserRecord], k: int, shared: SharedState | None = None,
                           now: float | None = None, reasons: bool = True) -> dict[str, tuple[str, Ranked]]:
        """Each user's (segment, list) from their records; ``shared``: the segments' state to
        rank with (default: loaded now)."""
        if not records:
            return {}
        now = self.clock() if now is None else now
        segments = {uid: self.segment_of(rec) for uid, rec in records.items()}
        if shared is None:
            shared = await self.state.load_segments(set(segments.values()))
        else:
            missing = set(segments.values()) - set(shared.guards)
            if missing:
                shared.merge(await self.state.load_segments(missing))
        cfg = self.config
        layers = SegmentLayers(COLUMNS, cfg.rerank, shared.layers) if cfg.rerank is not None else None
        uids = list(records)
        assigned = await self._assigned(segments)
        views = [View(uid, segments[uid], records[uid].row, records[uid].history, records[uid].seen,
                      explores(uid, now, cfg.explore_share), assigned.get(uid)) for uid in uids]
        with self.stages("rank"):
            ranked = await self._rank(views, k, shared, layers, reasons=reasons)
        return {uid: (segments[uid], r) for uid, r in zip(uids, ranked)}

    async def recommend(self, user_ids: list[str], k: int | None = None, now: float | None = None,
                        reasons: bool = True) -> dict[str, tuple[str, Ranked]]:
        """Each user's (segment, list) as they would be served now (what HTTP answers)."""
        records = await self.state.users(sorted(set(user_ids)))
        return await self.rank_records(records, k or self.config.top_k, now=now, reasons=reasons)

    def similar(self, item_id: str, k: int) -> tuple[list[tuple[str, float]], str]:
        """Items like ``item_id`` from its co-occurrence row, best first, and how they were found:
        ``"cooccurrence"``, ``"mf"`` (no neighbours yet: the closest MF rows, by cosine) or
        ``"unknown"`` (an item never seen)."""
        import numpy as np

        row = self.table.get(item_id)
        if row < 0:
            return [], "unknown"
        n = self.table.n_items
        ids = self.table.item_ids
        cols, sims = self.table.cooc.similar(row, k + len(self.table.unnamed), self.config.hybrid.cooc.alpha, n)
        named = self.table.named()
        if named is not None:
            keep = named[cols]
            cols, sims = cols[keep][:k], sims[keep][:k]
        if len(cols):
            return [(ids[c], float(s)) for c, s in zip(cols.tolist(), sims.tolist())], "cooccurrence"
        Q = self.table.mf.model.item_factors
        norms = np.linalg.norm(Q, axis=1)
        cos = (Q @ Q[row]) / np.maximum(norms * max(float(norms[row]), 1e-12), 1e-12)
        cos[row] = -np.inf
        named = self.table.named()
        if named is not None:
            cos[~named] = -np.inf
        from stream.models.base import top_k

        top = top_k(cos.astype(np.float64), min(k, n - 1)) if n > 1 else np.empty(0, dtype=np.int64)
        return [(ids[c], float(cos[c])) for c in top.tolist() if np.isfinite(cos[c])], "mf"

    # -- profiles and the catalogue -------------------------------------------------------
    async def apply_profile(self, user_id: str, attributes: dict[str, str], ts: float) -> tuple[str, str | None] | None:
        """Store a profile; returns (its segment, the user's previous profile segment or None), or
        None when the user was erased at or after the profile's ts (it is dropped)."""
        segment = profile_segment(attributes, self.segmenter, self.config.default_segment)
        if segment != self.config.default_segment and segment not in self._profile_segments:
            known = await self.state.profile_segments()
            if segment not in known and len(known) >= self.config.max_segments:
                segment = OTHER
            else:
                self._profile_segments.add(segment)
        stored, previous = await self.state.put_profile(Profile(user_id, dict(attributes), segment, float(ts)))
        return (segment, previous) if stored else None
