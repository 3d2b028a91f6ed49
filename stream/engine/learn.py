"""Learning from a micro-batch, after its trials were scored: every model's step, as changes.

    MF              the users' rows (one vectorised step over the batch), item gradients
    co-occurrence   the walk's new pairs and positives, for the items' owners
    popularity      decayed increments: per segment (to the state), per item (to the owners)
    re-rankers      pairwise River examples from the moments whose clicked item was a candidate
    guards          each trial's paired hit difference, in order, per segment
    behaviour       the clusterer and the users' behaviour, in event order
    seen items      capped at ``history_max`` (the oldest go)

Nothing is written here: the result is a :class:`~stream.state.base.Commit` for the user side
and an :class:`~stream.models.items.ItemUpdate` for the item side.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from stream.engine.batch import Batch
from stream.engine.config import EngineConfig
from stream.engine.rank import Ranked
from stream.models.items import ItemTable, ItemUpdate
from stream.models.popularity import decay_rate, plan
from stream.models.rerank.guard import SegmentGuard
from stream.models.rerank.layers import SegmentLayers
from stream.models.segments.behaviour import BehaviourModel, UserBehaviour
from stream.models.sharded import UserState
from stream.state.base import Commit, Loaded, PopularityChange, UserRecord

__all__ = ["Learned", "learn", "batch_seed"]


@dataclass
class Learned:
    """What a batch's learning reports (metrics, logs)."""

    loss: float | None = None
    learned: int = 0  # events the MF user side learned from
    examples: Counter = field(default_factory=Counter)  # re-ranker examples per segment
    guards: dict[str, SegmentGuard] = field(default_factory=dict)  # the guards the trials changed
    switches: list[dict] = field(default_factory=list)
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # behaviour moves (user, from, to)
    labels: dict[str, str] = field(default_factory=dict)  # behaviour segment -> readable label


def batch_seed(event_ids: list[str]) -> list[int]:
    """Integers drawn from a batch's event ids: the same batch draws the same negatives anywhere.

    >>> batch_seed(["a", "b"]) == batch_seed(["a", "b"]), batch_seed(["a"]) == batch_seed(["b"])
    (True, False)
    """
    return [zlib.crc32("\x1f".join(event_ids).encode("utf-8")), len(event_ids)]


def learn(batch: Batch, ranked: list[Ranked], loaded: Loaded, config: EngineConfig, table: ItemTable,
          layers: SegmentLayers | None, behaviour: BehaviourModel | None, now: float) -> tuple[Commit, ItemUpdate, Learned]:
    """Every model's step on the batch (see the module docstring)."""
    report = Learned()
    commit = Commit()
    update = ItemUpdate.empty(table.mf.k)
    weighted = batch.fresh_weighted()
    events = [ev for ev, _ in weighted]
    after = batch.after
    _mf(weighted, batch, table, now, update, report)
    if layers is not None:
        _rerank(batch, ranked, layers, config, loaded.shared.guards, report, table.get)
        commit.layers = layers.changes()
        commit.guards = {seg: (g.version, g.to_state()) for seg, g in report.guards.items()}
    _popularity(weighted, batch, loaded, config, commit, update)
    if batch.pair_runs:  # each pair changes both items' rows
        lengths = [len(past) for past, _ in batch.pair_runs]
        a = update.index(batch.new_positives).repeat(lengths)
        b = update.index([h for past, _ in batch.pair_runs for h in past])
        w = np.concatenate([np.ones(len(past)) if ws is None else np.asarray(ws, dtype=np.float64)
                            for past, ws in batch.pair_runs]) if len(b) else np.zeros(0)
        update.add_pair_rows(np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([w, w]))
    if batch.new_positives:
        update.add_counts(batch.new_positives, [1.0] * len(batch.new_positives))
    if behaviour is not None and loaded.clusterer is not None:
        _behaviour(weighted, batch, loaded, config, behaviour, commit, report)
    changed = {ev.user_id for ev in events}
    for uid in changed:
        _cap_seen(after[uid], config.history_max)
    commit.users = {uid: after[uid] for uid in sorted(changed)}
    commit.event_ids = [ev.event_id for ev in events]
    stats = Counter(f"events_total:{ev.type}" for ev in events)
    dups = len(batch.events) - len(events)
    if dups:
        stats["duplicates_total"] = dups
    commit.stats = dict(stats)
    commit.users_seen = sorted(changed)
    commit.items_seen = sorted({ev.item_id for ev in events})
    commit.recommended = sorted({i for m, r in zip(batch.moments, ranked) if m.trial for i in r.ids})
    return commit, update, report


def _mf(weighted, batch: Batch, table: ItemTable, now: float, update: ItemUpdate, report: Learned) -> None:
    """The users' MF rows, one vectorised step; the item gradients go to the update."""
    index: dict[str, int] = {}
    users: list[UserState | None] = []
    u, items, weights = [], [], []
    for ev, w in weighted:
        if w == 0.0:
            continue
        j = index.get(ev.user_id)
        if j is None:
            j = index[ev.user_id] = len(users)
            old = batch.before[ev.user_id].row
            users.append(None if old is None else old.copy())
        u.append(j)
        items.append(ev.item_id)
        weights.append(w)
    if not u:
        return
    new = [j for j, s in enumerate(users) if s is None]
    if new:
        for j, state in zip(new, table.mf.new_users([uid for uid, j2 in index.items() if users[j2] is None])):
            users[j] = state
    grads = table.mf.learn_users(users, u, items, weights, now=now,
                                 seed=batch_seed([ev.event_id for ev, _ in weighted]))
    table.rows([])  # the MF part may have grown: so does the rest of the table
    for state in users:
        batch.after[state.user_id].row = state
    update.grads = grads
    report.loss = table.mf.last_loss
    report.learned = len(u)


def _rerank(batch: Batch, ranked: list[Ranked], layers: SegmentLayers, config: EngineConfig,
            guard_states: dict[str, dict[str, str] | None], report: Learned, table_row) -> None:
    """Guards fold the trials' paired hit differences; layers learn pairwise from the moments
    whose clicked item was a candidate (at most ``max_learning`` of them per segment)."""
    rp = config.rerank
    learnable: dict[str, list[tuple[object, object, int]]] = {}  # segment -> (moment, candidates, position)
    for m, r in zip(batch.moments, ranked):
        c = r.candidates
        if c is None:
            continue
        if m.trial and r.seg is not None:
            guard = report.guards.get(c.segment)
            if guard is None:
                guard = report.guards[c.segment] = SegmentGuard.from_state(
                    c.segment, guard_states.get(c.segment), **rp.guard_args(c.segment))
            if guard.update(m.event.item_id in r.seg, m.event.item_id in r.glob):
                report.switches.append(guard.switches[-1])
        p = c.position(table_row(m.event.item_id))
        if p >= 0:  # else outside the candidates: re-ordering them cannot reach it
            learnable.setdefault(c.segment, []).append((m, c, p))
    for segment, examples in learnable.items():
        if rp.max_learning is not None and len(examples) > rp.max_learning:
            rng = np.random.default_rng([int(rp.seed), *batch_seed([m.event.event_id for m, _, _ in examples])])
            keep = np.sort(rng.choice(len(examples), size=rp.max_learning, replace=False))
            examples = [examples[j] for j in keep.tolist()]
        for m, c, p in examples:
            pool = np.delete(np.arange(len(c.rows)), p)
            n_neg = min(int(rp.of(c.segment, "n_negatives")), len(pool))
            if n_neg == 0:
                continue
            rng = np.random.default_rng([int(rp.seed), zlib.crc32(m.event.event_id.encode("utf-8"))])
            negatives = rng.choice(pool, size=n_neg, replace=False).tolist()
            layers.learn(c.segment, [(c.X[p] - c.X[j], c.shared[p] - c.shared[j]) for j in negatives])
            report.examples[c.segment] += n_neg


def _popularity(events, batch: Batch, loaded: Loaded, config: EngineConfig, commit: Commit,
                update: ItemUpdate) -> None:
    """Decayed popularity: per segment in the state, per item (the blend's) on the item side."""
    positives = [(ev, w) for ev, w in events if w > 0]
    if not positives:
        return
    rate = decay_rate(config.segment_half_life)
    by_seg: dict[str, list] = {}
    for ev, w in positives:
        by_seg.setdefault(batch.segments[ev.user_id], []).append((ev.ts, w, ev.item_id))
    for seg, rows in by_seg.items():
        before = loaded.shared.popularity_refs.get(seg)
        ref, factor, inc = plan(before, rows, rate)
        commit.popularity[seg] = PopularityChange(before, ref, factor, inc)
    item_rate = decay_rate(config.hybrid.popularity_half_life)
    ref = max(float(ev.ts) for ev, _ in positives)
    update.add_popularity([ev.item_id for ev, _ in positives],
                          [w * math.exp((float(ev.ts) - ref) * item_rate) for ev, w in positives], ref)


def _behaviour(events, batch: Batch, loaded: Loaded, config: EngineConfig, model: BehaviourModel, commit: Commit,
               report: Learned) -> None:
    """The behaviour clusterer over the signal events of users whose profile names no segment."""
    default = config.default_segment
    profiled = {uid for uid, rec in batch.before.items() if rec.profile_segment and rec.profile_segment != default}
    steps = [(ev.user_id, w) for ev, w in events if ev.user_id not in profiled and w != 0]
    if not steps:
        return
    records: dict[str, UserBehaviour] = {}
    for uid, _ in steps:
        if uid not in records:
            old = batch.after[uid].behaviour
            records[uid] = UserBehaviour(**old.__dict__) if old is not None else UserBehaviour()
    vectors = {uid: (None if batch.before[uid].row is None else batch.before[uid].row.vector) for uid in records}
    changes = model.learn(steps, records, loaded.clusterer, vectors)
    for uid, rec in records.items():
        batch.after[uid].behaviour = rec
    commit.behaviour = changes
    commit.seeded_before = loaded.seeded
    report.moved = changes.moved
    report.labels = model.labels(loaded.clusterer)


def _cap_seen(rec: UserRecord, history_max: int) -> None:
    """Forget the oldest seen items past ``history_max`` (ties: the lower item key first)."""
    rec.seen.cap(history_max)
