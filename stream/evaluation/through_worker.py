"""``streamrec evaluate --through-worker``: what a real worker serves, next to the offline figure.

    1. the local stack (started if it is not running), a namespace of this run's own (topics,
       consumer group, Redis prefix), a real ``streamrec worker`` that logs the order and the
       boundaries of the batches it applies (STREAMREC_BATCH_LOG_PATH);
    2. the data set's profiles and catalogue are produced and applied first, then its
       interactions at ``--rate`` events/s (0: as fast as it goes);
    3. once the worker has applied every event: **served** = its own prequential metrics
       (``/metrics``: a hit when the clicked item was in the list it would have served the
       user just before the event, what ``GET /recommendations/{user}`` answers);
    4. **offline** = the same engine, configured from the same settings, in memory, replaying
       exactly the worker's batches; and popularity on the same batches.

Trials are counted by the same rule on both sides (:func:`stream.signals.is_trial`); the
difference between served and offline is what running distributed costs: item rows reach
the worker's copy through Kafka a moment after their owner wrote them, where offline has
them at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from stream.config import Settings
from stream.evaluation.prequential import HitCounts
from stream.evaluation.streams import EventStream

__all__ = ["ThroughWorkerResult", "through_worker", "worker_metrics", "read_batch_log"]


@dataclass
class Figures(HitCounts):
    recommended: int = 0  # distinct items served in trials
    items: int = 0  # distinct items in the events

    @property
    def coverage(self) -> float:
        return self.recommended / self.items if self.items else 0.0


@dataclass
class ThroughWorkerResult:
    dataset: str
    rate: float
    events: int
    batches: int
    mean_batch: float
    seconds: float  # producing and applying the interactions
    served: Figures
    offline: Figures
    popularity: Figures

    @property
    def ratio(self) -> float:
        return self.served.recall / self.offline.recall if self.offline.recall else float("nan")

    def to_json(self) -> str:
        d = asdict(self)
        for name in ("served", "offline", "popularity"):
            f = getattr(self, name)
            d[name].update(recall=f.recall, ndcg=f.ndcg, coverage=f.coverage)
        d["ratio"] = self.ratio
        return json.dumps(d, indent=2)


def worker_metrics(url: str) -> dict[str, float]:
    """A worker's metrics, each summed over its label sets."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        name = name.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


def read_batch_log(path: str | Path) -> list[list[str]]:
    """The worker's batches: each the event ids it applied, in order."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["events"] for line in fh if line.strip()]


def _served(m: dict[str, float]) -> Figures:
    return Figures(int(m.get("streamrec_prequential_trials_total", 0)), int(m.get("streamrec_prequential_hits_total", 0)),
                   m.get("streamrec_prequential_ndcg_gain_total", 0.0),
                   int(m.get("streamrec_prequential_recommended_items", 0)), int(m.get("streamrec_items_seen", 0)))


def _offline(metrics, catalogue: int) -> Figures:
    return Figures(metrics.trials, metrics.hits, metrics.ndcg_sum, len(metrics.recommended), catalogue)


def _applied(client, prefix: str) -> int:
    stats = {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}:stats").items()}
    return sum(v for k, v in stats.items() if k.startswith("events_total:")) + stats.get("duplicates_total", 0)


def through_worker(settings: Settings, stream: EventStream, *, rate: float = 1000.0, k: int = 10,
                   model_config: dict | None = None, out: TextIO | None = None, progress: TextIO | None = sys.stderr,
                   keep_stack: bool = True, work_dir: str | None = None, timeout: float = 3600.0) -> ThroughWorkerResult:
    """Replay ``stream`` through a real worker on the local stack (see the module docstring)."""
    from producers.cli import publish
    from producers.sdk import EventProducer
    from stream.engine.config import EngineConfig
    from stream.engine.offline import EngineRanker
    from stream.evaluation.baselines import popularity_config
    from stream.evaluation.prequential import prequential
    from stream.stack import Stack
    from stream.stack.process import free_port, stop_child, wait_worker_ready
    from stream.topics import ensure_topics

    out = sys.stdout if out is None else out
    say = (lambda msg: print(f"[through-worker] {msg}", file=progress, flush=True)) if progress else (lambda msg: None)
    stack = Stack(settings)
    was_up = all(s.healthy for s in stack.status())
    stack.up(log=say)
    tag = uuid.uuid4().hex[:8]
    work = Path(work_dir or tempfile.mkdtemp(prefix=f"streamrec-tw-{tag}-"))
    work.mkdir(parents=True, exist_ok=True)
    run = settings.model_copy(update={
        "app_id": f"tw-{tag}", "topic_prefix": f"tw{tag}.", "redis_prefix": settings.run_prefix(f"tw:{tag}"),
        "web_port": free_port(),
        "datadir": str(work / f"worker-{tag}"), "batch_log_path": str(work / f"batches-{tag}.jsonl"),
    })
    if model_config is not None:
        run = run.model_copy(update={"model_config_path": str(work / "model.json")})
        (work / "model.json").write_text(json.dumps(model_config), encoding="utf-8")
    ensure_topics(run, quiet=True)
    log_path = work / f"worker-{tag}.log"
    log_file = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], stdout=log_file, stderr=subprocess.STDOUT,
                            env=run.as_env(), start_new_session=True)
    url = f"http://127.0.0.1:{run.web_port}"
    client = run.redis_client()
    try:
        say(f"worker {run.app_id} starting (log: {log_path})")
        if not wait_worker_ready(run.web_port, 120.0, proc, run.http_headers()):
            raise RuntimeError(f"the worker did not become ready; see {log_path}")
        with EventProducer(run) as producer:
            for p in stream.profiles:
                producer.send("user", p)
            for item in stream.catalogue:
                producer.send("item", item)
            producer.flush()
            _wait(lambda: worker_metrics(url).get("streamrec_profiles_total", 0) >= len(stream.profiles)
                  and worker_metrics(url).get("streamrec_model_items", 0) >= len({i["item_id"] for i in stream.catalogue}),
                  120.0, "the profiles and the catalogue to be applied")
            say(f"{len(stream.profiles):,} profiles and {len(stream.catalogue):,} items applied; producing "
                f"{len(stream.interactions):,} events at {'full speed' if not rate else f'{rate:,.0f} events/s'}")
            started = time.monotonic()
            sent = publish(producer, iter(stream.interactions), rate=rate or None, quiet=True)
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while True:
            done = _applied(client, run.redis_prefix)
            if time.monotonic() - last >= 2.0:
                m = worker_metrics(url)
                served = _served(m)
                say(f"{done:,}/{sent:,} events applied, {served.trials:,} trials, served recall@{k} "
                    f"{served.recall:.4f}")
                last = time.monotonic()
            if done >= sent:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited ({proc.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done:,} of {sent:,} events applied after {timeout:.0f} s")
            time.sleep(0.2)
        seconds = time.monotonic() - started
        time.sleep(6.0)  # the coverage gauges update every 5 s
        served = _served(worker_metrics(url))
    finally:
        stop_child(proc, signal.SIGTERM, 60.0)
        log_file.close()
    batches = read_batch_log(run.batch_log_path)
    say(f"worker applied {sum(map(len, batches)):,} events in {len(batches):,} batches; replaying them offline")
    by_id = {ev.event_id: n for n, ev in enumerate(stream.events())}
    missing = [e for b in batches for e in b if e not in by_id]
    if missing:
        raise RuntimeError(f"the worker's batch log names {len(missing)} events not in the stream, e.g. {missing[0]!r}")
    index_batches = [[by_id[e] for e in b] for b in batches]
    config = EngineConfig.from_settings(run, model_config)
    rankers = {"engine": EngineRanker(config), "popularity": EngineRanker(popularity_config(config))}
    for r in rankers.values():
        r.prepare(stream)
    metrics, catalogue = prequential(stream.events(), rankers, index_batches, k=k, progress=progress,
                                     progress_every=20_000)
    result = ThroughWorkerResult(stream.name, rate, sent, len(batches), sent / max(len(batches), 1), seconds, served,
                                 _offline(metrics["engine"], catalogue), _offline(metrics["popularity"], catalogue))
    print(format_result(result, k), file=out, flush=True)
    if not keep_stack and not was_up:
        stack.down(log=say)
    _cleanup(run, client)
    return result


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _cleanup(run: Settings, client) -> None:
    """This run's Redis keys and topics go (the figures are printed; the logs stay)."""
    from stream.topics import drop_topics

    drop_topics(run)
    keys = list(client.scan_iter(f"{run.redis_prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])


def format_result(r: ThroughWorkerResult, k: int = 10) -> str:
    rate = "as fast as it goes" if not r.rate else f"{r.rate:,.0f} events/s"
    lines = [
        f"streamrec evaluate --through-worker: {r.dataset}, {r.events:,} events produced at {rate}; "
        f"the worker applied them in {r.batches:,} batches (mean {r.mean_batch:.0f} events) in {r.seconds:.0f} s",
        "",
        f"| what (same events, same batches) | trials | recall@{k} | NDCG@{k} | coverage |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in (("**served by the worker** (its own metrics)", r.served),
                    ("offline engine, the worker's batches", r.offline),
                    ("offline popularity, the worker's batches", r.popularity)):
        lines.append(f"| {name} | {f.trials:,} | {f.recall:.4f} | {f.ndcg:.4f} | {f.coverage:.3f} |")
    lines.append("")
    above = "above" if r.served.recall > r.popularity.recall else "NOT above"
    lines.append(f"served / offline recall@{k}: {r.ratio:.3f}; served is {above} popularity "
                 f"({r.served.recall:.4f} vs {r.popularity.recall:.4f})")
    if r.served.trials != r.offline.trials:
        lines.append(f"note: {r.served.trials:,} trials served against {r.offline.trials:,} offline")
    return "\n".join(lines)

