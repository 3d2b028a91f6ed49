"""`streamrec bench step`: the worker's batch step in process, µs an event per stage.

The step is the one the ingest agent runs (:class:`stream.engine.ingest.Ingest`: validate,
load, score the trials, learn, commit, push), against the local Redis, with the item owner's
work in the same process as the worker does it (:class:`WindowBus`: each update encoded and
decoded as on item-updates and numbered as its partition's offsets would be, gathered per owner
partition for STREAMREC_ITEM_PUBLISH_SECONDS, applied and committed by the owner, the changed
rows encoded as on item-factors; no Kafka between them), lists recorded instead of sent, and simulator events at steady state: a
warm-up fills the world's users and items first.

The world has a fixed size (printed with the result). Each of ``--runs`` runs times the same
number of events in batches of STREAMREC_BATCH_SIZE; the figures are medians over the runs.
Beside them, from the same batches of the same runs, a reference: ``json.loads`` of every
record's bytes, so that the step can be read as a ratio on a noisy, shared machine.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field

from stream.config import Settings
from stream.contract import INTERACTION_TYPES, TOPIC_OF
from stream.engine.items import ItemBus
from stream.engine.stages import OFF, STAGE_NAMES, Stages
from stream.gctune import tuned_gc

__all__ = ["StepBenchResult", "run_step_bench", "main_bench_step", "WindowBus"]

WORLD = {"n_users": 20_000, "n_items": 10_000, "n_segments": 4, "n_categories": 8, "seed": 3}
#: Key kinds that exist once per user (the memory a user costs).
USER_KINDS = ("user record", "user reader row", "user last list", "user profile")
EVENT_TYPES = INTERACTION_TYPES  # what the ingest agent reads


class WindowBus(ItemBus):
    """The worker's item side in process (see the module docstring): what ``KafkaBus`` and the
    ``own_items`` task do, without the broker."""

    def __init__(self, owner, seconds: float) -> None:
        from stream.engine.items import Gather

        self.owner = owner
        self.window = Gather(seconds)
        self.rows = 0  # rows published
        self.offsets: dict[int, int] = {}  # partition -> the next offset, as item-updates would number them

    async def deliver(self, entries) -> None:
        from stream.engine.messages import decode_update, encode_row

        for e in entries:
            offset = self.offsets.get(e.partition, 0)
            self.offsets[e.partition] = offset + 1
            self.window.add(e.partition, (offset, decode_update(e.payload)))
        if entries:
            await self.owner.state.outbox_done([e.entry_id for e in entries])
        while self.window.due(paced=False):  # what the worker's owner took meanwhile, a partition at a time
            for partition, held in self.window.take().items():
                updates = [u for _, u in held]
                for row in await self.owner.apply(partition, updates, [o for o, _ in held]):
                    encode_row(row)
                    self.rows += 1


class _Recorder:
    """The worker's publisher, recording: lists, dead letters and alerts are counted, not sent."""

    def __init__(self) -> None:
        self.lists = 0
        self.dead = 0

    async def recommendations(self, user_id: str, payload: bytes) -> None:
        self.lists += 1

    async def dead_letter(self, record, reason: str, detail: str) -> None:
        self.dead += 1

    async def drift_alert(self, segment: str, payload: bytes) -> None:
        pass

    async def flush(self) -> None:
        pass


@dataclass
class StepBenchResult:
    world: dict
    batch_size: int
    warmup_events: int
    events_per_run: int
    runs: int
    us_per_event: dict[str, float]  # stage -> median over the runs
    total_us_per_event: float
    json_loads_us_per_event: float
    per_run: list[dict] = field(default_factory=list)
    lists_pushed: int = 0
    redis_prefix: str = ""  # the run's own (deleted at the end)
    memory: dict = field(default_factory=dict)  # key kind -> {"keys", "bytes_each"} (Redis MEMORY USAGE)
    dedupe_ttl_seconds: int = 0
    popularity_read: tuple[int, int, float] = (0, 0, 0.0)  # segment popularity: (asked, read from Redis, seconds kept)

    @property
    def ratio(self) -> float:
        return self.total_us_per_event / self.json_loads_us_per_event

    def table(self) -> str:
        world = (f"world {self.world['n_users']:,} users, {self.world['n_items']:,} items (simulator, seed "
                 f"{self.world['seed']})" if "dataset" not in self.world else f"{self.world['dataset']} "
                 f"({self.world['n_users']:,} users, {self.world['n_items']:,} items, in rating order)")
        lines = [f"streamrec bench step: {world}, warm-up {self.warmup_events:,} events, "
                 f"{self.runs} runs of {self.events_per_run:,} events in batches of {self.batch_size}",
                 "", "| stage | µs an event (median of runs) |", "|---|---:|"]
        for name in STAGE_NAMES:
            if name in self.us_per_event:
                lines.append(f"| {name} | {self.us_per_event[name]:.1f} |")
        lines += [f"| **total** | **{self.total_us_per_event:.1f}** |",
                  f"| reference: json.loads of the same records | {self.json_loads_us_per_event:.2f} |", "",
                  f"total / json.loads: {self.ratio:.0f}; {1e6 / self.total_us_per_event:,.0f} events/s for the step "
                  f"alone; {self.lists_pushed:,} lists pushed in the timed runs"]
        asked, read, kept = self.popularity_read
        if asked:
            lines.append(f"segment popularity read by rankings in the timed runs: {asked:,} scores, {read:,} "
                         f"({read / asked:.0%}) from Redis, the rest kept (STREAMREC_SEGMENT_POPULARITY_CACHE_SECONDS "
                         f"= {kept:g})")
        if self.memory:
            lines += ["", "Redis memory after the runs (MEMORY USAGE, sampled per kind of key):", "",
                      "| keys | count | bytes each (mean) |", "|---|---:|---:|"]
            for kind, m in sorted(self.memory.items()):
                lines.append(f"| {kind} | {m['keys']:,} | {m['bytes_each']:,.0f} |")
            per_user = sum(self.memory[k]["bytes_each"] * self.memory[k]["keys"] for k in USER_KINDS
                           if k in self.memory) / max(1, self.memory.get("user record", {}).get("keys", 0))
            ids = self.memory.get("event-id sets", {})
            per_id = ids.get("bytes_each", 0.0) / max(1, ids.get("ids_each", 1))
            lines += ["", f"per user (record, reader row, last list, profile): {per_user:,.0f} B, "
                      f"{per_user * 1e6 / 2**30:.2f} GiB per million users; per event id kept {per_id:.0f} B, "
                      f"{per_id * 1000 * 1.5 * self.dedupe_ttl_seconds / 2**20:,.0f} MiB per 1,000 events/s "
                      f"(three half-windows of STREAMREC_DEDUPE_TTL_SECONDS = {self.dedupe_ttl_seconds} s at most)"]
            owned = self.memory.get("applied item updates", {})
            if owned.get("ids_each"):
                held = owned["ids_each"] * owned["keys"]
                lines.append(f"item update ids kept by the owners: {held:,.0f} in {owned['keys']:,} sets, "
                             f"{owned['bytes_each'] * owned['keys'] / held:.0f} B each")
        return "\n".join(lines)


def _records(settings: Settings, events, first_offset: int):
    from stream.engine.validate import Record

    out = []
    for n, (etype, payload) in enumerate(events):
        value = json.dumps(payload, separators=(",", ":")).encode()
        out.append(Record(settings.topic(TOPIC_OF[etype]), 0, first_offset + n, payload["user_id"].encode(), value))
    return out


async def _bench(settings: Settings, warmup: int, per_run: int, runs: int, progress,
                 dataset: str = "simulator") -> StepBenchResult:
    from producers.simulator import World, WorldConfig
    from stream.engine.alerts import DriftWatch
    from stream.engine.config import EngineConfig
    from stream.engine.engine import Engine
    from stream.engine.ingest import Ingest
    from stream.engine.items import ItemOwner
    from stream.engine.push import Pusher
    from stream.metrics import METRICS
    from stream.models.items import ItemTable
    from stream.state.redis import RedisState

    config = EngineConfig.from_settings(settings, None)
    table = ItemTable(config.hybrid)
    client = settings.redis_client(asyncio=True)
    state = RedisState.for_engine(client, settings, config, table.mf.k)
    owner = ItemOwner(table, state)
    from stream.experiments.attribution import Attribution
    from stream.experiments.serving import Serving
    from stream.experiments.state import RedisExperiments

    # as the worker: STREAMREC_EXPERIMENTS_PATH's variants served, served lists recorded, events naming one attributed
    experiment_state = RedisExperiments.beside(state)
    engine = Engine(config, state, table, WindowBus(owner, settings.item_publish_seconds),
                    experiments=Serving.from_settings(settings, config, table, experiment_state, METRICS),
                    segment_popularity_seconds=settings.segment_popularity_cache_seconds)
    sink = _Recorder()
    attribution = Attribution.from_settings(experiment_state, settings)
    pusher = Pusher.from_settings(engine, sink, METRICS, settings, lists=attribution)
    drift = DriftWatch.from_settings(settings, METRICS)
    topic_types = {settings.topic(t): e for e, t in TOPIC_OF.items() if e in EVENT_TYPES}
    ingest = Ingest(engine, pusher, sink, METRICS, topic_types=topic_types, drift=drift, attribution=attribution)

    if dataset == "simulator":
        world_info = dict(WORLD)
        world = World(WorldConfig(**WORLD))
        gen = world.generate(None, start_ts=time.time() - 3600.0, step_seconds=0.001,
                             run_id=f"bench-{uuid.uuid4().hex[:6]}")
    else:  # a data set's interactions in their order (its profiles and catalogue are not applied)
        from stream.evaluation.streams import load_stream

        stream = load_stream(dataset)
        if warmup + runs * per_run > len(stream.interactions):
            raise ValueError(f"bench step: {dataset} has {len(stream.interactions):,} events, fewer than "
                             f"{warmup:,} + {runs} x {per_run:,}")
        world_info = {"dataset": dataset, "n_users": len({p["user_id"] for _, p in stream.interactions}),
                      "n_items": len({p.get("item_id") for _, p in stream.interactions}), "seed": None}
        gen = iter(stream.interactions)
    size = settings.batch_size
    offset = 0

    def take(n: int):
        nonlocal offset
        events = [next(gen) for _ in range(n)]
        recs = _records(settings, events, offset)
        offset += n
        return [recs[i:i + size] for i in range(0, len(recs), size)]

    try:
        done = 0
        for batch in take(warmup):
            await ingest.handle(batch)
            done += len(batch)
            if done % 10_000 < size:
                progress(f"warm-up: {done:,} of {warmup:,} events")
        results = []
        stages = Stages()
        engine.stages = stages
        kept = engine.popularity
        asked_before, read_before = kept.asked, kept.read
        for run in range(runs):
            batches = take(per_run)
            stages.reset()
            lists = sink.lists
            loads = 0.0
            wall = 0.0
            for batch in batches:
                t0 = time.perf_counter()
                for rec in batch:
                    json.loads(rec.value)
                loads += time.perf_counter() - t0
                t0 = time.perf_counter()
                await ingest.handle(batch)
                wall += time.perf_counter() - t0
            per = {name: s * 1e6 / per_run for name, s in stages.seconds.items()}
            per["other"] = max(0.0, wall * 1e6 / per_run - sum(per.values()))  # KPIs, drift, the ingest's own work
            results.append({"stages": per, "total": wall * 1e6 / per_run, "json_loads": loads * 1e6 / per_run,
                            "lists": sink.lists - lists})
            progress(f"run {run + 1} of {runs}: {results[-1]['total']:.1f} µs an event "
                     f"(json.loads {results[-1]['json_loads']:.2f})")
        engine.stages = OFF
        memory = await _memory(client, settings.redis_prefix)
        names = sorted({n for r in results for n in r["stages"]}, key=lambda n: STAGE_NAMES.index(n)
                       if n in STAGE_NAMES else len(STAGE_NAMES))
        return StepBenchResult(
            world=world_info, batch_size=size, warmup_events=warmup, events_per_run=per_run, runs=runs,
            us_per_event={n: statistics.median(r["stages"].get(n, 0.0) for r in results) for n in names},
            total_us_per_event=statistics.median(r["total"] for r in results),
            json_loads_us_per_event=statistics.median(r["json_loads"] for r in results),
            per_run=results, lists_pushed=sum(r["lists"] for r in results), redis_prefix=settings.redis_prefix,
            memory=memory, dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
            popularity_read=(kept.asked - asked_before, kept.read - read_before, kept.seconds))
    finally:
        keys = [k async for k in client.scan_iter(f"{settings.redis_prefix}:*", count=5000)]
        for i in range(0, len(keys), 5000):
            await client.delete(*keys[i:i + 5000])
        await client.aclose()


def _kind(key: str, prefix: str) -> str:
    rest = key[len(prefix) + 1:]
    if rest.startswith("user:"):
        return {"profile": "user profile", "recs": "user last list"}.get(rest.rsplit(":", 1)[-1], "user record") \
            if rest.count(":") > 1 else "user record"
    if rest.startswith("owner:") and ":ids:" in rest:
        return "applied item updates"  # the owners' id sets (one a partition and half-window)
    for start, kind in (("emb:user:", "user reader row"), ("emb:item:", "item row"), ("ids:", "event-id sets"),
                        ("owner:offsets", "owner applied offsets"), ("pop:", "segment popularity"),
                        ("erased:", "erasure markers"), ("rec:", "served lists (attribution)")):
        if rest.startswith(start):
            return kind
    return "other"


async def _memory(client, prefix: str, sample: int = 2000) -> dict:
    """Bytes per key, by kind of key, from a sample of each kind (Redis MEMORY USAGE)."""
    import random

    kinds: dict[str, list[bytes]] = {}
    async for key in client.scan_iter(f"{prefix}:*", count=5000):
        kinds.setdefault(_kind(key.decode(), prefix), []).append(key)
    out = {}
    rng = random.Random(0)
    for kind, keys in kinds.items():
        picked = keys if len(keys) <= sample else rng.sample(keys, sample)
        pipe = client.pipeline(transaction=False)
        for key in picked:
            pipe.memory_usage(key, samples=0)
        sizes = [s or 0 for s in await pipe.execute()]
        entry = {"keys": len(keys), "bytes_each": sum(sizes) / max(1, len(sizes))}
        if kind in ("event-id sets", "applied item updates"):
            pipe = client.pipeline(transaction=False)
            for key in picked:
                pipe.scard(key)
            entry["ids_each"] = sum(await pipe.execute()) / max(1, len(picked))
        out[kind] = entry
    return out


def run_step_bench(settings: Settings, *, warmup: int = 50_000, events: int = 20_000, runs: int = 3,
                   progress=None, dataset: str = "simulator") -> StepBenchResult:
    """Bring the local Redis up if needed, and run the bench under a Redis prefix of its own."""
    from stream.stack import Stack

    if warmup < 0 or events < 1 or runs < 1:
        raise ValueError(f"bench step: need warmup >= 0, events >= 1, runs >= 1 (got {warmup}, {events}, {runs})")
    say = progress or (lambda msg: None)
    Stack(settings, services=("redis",)).up(log=say)
    run = settings.model_copy(update={"redis_prefix": settings.run_prefix(f"bench-step-{uuid.uuid4().hex[:8]}")})
    with tuned_gc(settings.gc_threshold):  # as a worker's collector is (stream/agents/process.py)
        return asyncio.run(_bench(run, warmup, events, runs, say, dataset))


def main_bench_step(settings: Settings, args) -> int:
    progress = (lambda msg: print(f"[bench step] {msg}", file=sys.stderr, flush=True))
    result = run_step_bench(settings, warmup=args.warmup, events=args.events, runs=args.runs, progress=progress,
                            dataset=getattr(args, "dataset", None) or "simulator")
    print(result.table())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({**asdict(result), "ratio_total_over_json_loads": result.ratio}, fh, indent=2)
    return 0
