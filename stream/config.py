"""The one settings object. Every setting is read from a ``STREAMREC_*`` variable.

Nothing else in streamrec reads the environment for configuration. Secrets are
``SecretStr``: their ``repr`` and ``str`` print ``**********``, so logging a
``Settings`` object never leaks them.

Examples
--------
>>> s = Settings(redis_password="hunter2", kafka_port=19092)
>>> s.bootstrap_servers
'localhost:19092'
>>> "hunter2" in repr(s)
False
>>> s.topic("clicks")
'clicks'
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.contract import TOPIC_OF

__all__ = ["Settings", "get_settings", "default_cache_dir", "TOPIC_NAMES"]

#: Logical topic names; the real name is ``topic_prefix + name``. The event topics first.
TOPIC_NAMES = (
    *TOPIC_OF.values(),
    "recommendations",
    "rec-requests",
    "events.dlq",
    "alerts.drift",
    "item-updates",
    "item-factors",
    "user-erasures",
    "user-erasures.done",
)


def default_cache_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/streamrec"))


class Settings(BaseSettings):
    """streamrec's settings; each field's variable is ``STREAMREC_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(env_prefix="STREAMREC_", frozen=True, extra="ignore")

    # --- identity -----------------------------------------------------------
    app_id: str = Field("streamrec", description="Faust app id; also the consumer group. STREAMREC_APP_ID")
    log_level: Literal["crit", "error", "warn", "info", "debug"] = Field(
        "info", description="Worker log level: crit, error, warn, info or debug. STREAMREC_LOG_LEVEL"
    )

    # --- Kafka --------------------------------------------------------------
    bootstrap_servers: str = Field(
        "", description="Kafka bootstrap servers, host:port[,host:port]. Default localhost:<kafka_port>. STREAMREC_BOOTSTRAP_SERVERS"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="STREAMREC_KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="Used with SASL_*. STREAMREC_KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str = Field("", description="STREAMREC_KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="STREAMREC_KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: str = Field("", description="CA bundle for SSL/SASL_SSL. STREAMREC_KAFKA_SSL_CAFILE")
    event_retention_hours: float = Field(
        168.0, gt=0, description="How long Kafka keeps the event topics (clicks, dwell, skips, impressions, "
        "purchases, rec-requests): `streamrec topics` and the worker set retention.ms when they create or check the topics. "
        "Without pseudonymous ids these records carry raw user ids until then. STREAMREC_EVENT_RETENTION_HOURS")
    recommendation_retention_hours: float = Field(
        168.0, gt=0, description="How long Kafka keeps the recommendations topic (its keys and lists name users). "
        "STREAMREC_RECOMMENDATION_RETENTION_HOURS")
    dlq_retention_hours: float = Field(
        168.0, gt=0, description="How long Kafka keeps the dead-letter topic (the rejected messages' original "
        "bytes). STREAMREC_DLQ_RETENTION_HOURS")
    topic_prefix: str = Field("", description="Prefix of every topic name (tests use a unique one). STREAMREC_TOPIC_PREFIX")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of each event topic. STREAMREC_PARTITIONS")
    replication_factor: int = Field(1, ge=1, description="STREAMREC_REPLICATION_FACTOR")

    # --- Redis --------------------------------------------------------------
    redis_url: str = Field("", description="redis://host:port/db. Default redis://localhost:<redis_port>/0. STREAMREC_REDIS_URL")
    redis_username: str = Field(
        "", description="Redis ACL user (empty: the default user, as with requirepass). STREAMREC_REDIS_USERNAME")
    redis_password: SecretStr = Field(SecretStr(""), description="STREAMREC_REDIS_PASSWORD")
    redis_prefix: str = Field("streamrec", description="Prefix of every Redis key. STREAMREC_REDIS_PREFIX")
    redis_cluster_port: int = Field(
        7000, description="First port of the local stack's Redis Cluster (`streamrec stack up --services "
        "redis-cluster`): three nodes, on it and the next two ports. STREAMREC_REDIS_CLUSTER_PORT")
    redis_cluster: bool = Field(
        False, description="STREAMREC_REDIS_URL names a node of a Redis Cluster (the others are found from it). "
        "Every key of a deployment then lives in one hash slot, so STREAMREC_REDIS_PREFIX must carry a hash tag, "
        "for example {streamrec}: one shard holds the data and serves every call (docs/ARCHITECTURE.md, Growing "
        "past one machine). STREAMREC_REDIS_CLUSTER")

    # --- worker -------------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Worker HTTP bind address. STREAMREC_WEB_HOST")
    web_port: int = Field(6066, description="Worker HTTP port (/recommendations, /metrics, /health). STREAMREC_WEB_PORT")
    http_token: SecretStr = Field(
        SecretStr(""), description="Bearer token the worker's HTTP API asks for on /recommendations and /items "
        "(`Authorization: Bearer <token>`); the consumer SDK and CLI send it. Empty: no token. STREAMREC_HTTP_TOKEN")
    http_open_health_metrics: bool = Field(
        True, description="/health and /metrics answer without the token; false: they need it too (then give "
        "Prometheus the token). STREAMREC_HTTP_OPEN_HEALTH_METRICS")
    id_key: SecretStr = Field(
        SecretStr(""), description="Key of pseudonymous ids: when set, the producer and consumer SDKs replace "
        "user ids (and event ids) by a keyed hash, HMAC-SHA256 truncated to 128 bits (stream/pseudonyms.py), "
        "so raw ids never reach Kafka or Redis. At least 16 characters; keep it secret and keep it: a new key "
        "makes every user new. Empty: ids as given. STREAMREC_ID_KEY")
    erasure_key: SecretStr = Field(
        SecretStr(""), description="Key of the keyed hashes the worker keeps instead of ids: erasure markers "
        "(HMAC-SHA256 of the user id) and the event ids of the dedupe window (keyed BLAKE2b), stream/state/tokens.py. "
        "At least 16 characters; every worker of a deployment needs the same; a new key forgets the markers and "
        "the dedupe window. Empty: the first worker makes a random key and keeps it in Redis ({prefix}:erasure:key), "
        "so whoever reads Redis reads the key too. STREAMREC_ERASURE_KEY")
    erasure_marker_hours: float = Field(
        336.0, gt=0, description="How long an erasure marker is kept: while it lives, the user's events with a ts at "
        "or before the erasure are dropped, whenever they arrive. At least STREAMREC_EVENT_RETENTION_HOURS (an event "
        "still on Kafka could bring the user back). Default: twice STREAMREC_EVENT_RETENTION_HOURS, since Kafka "
        "deletes a record up to about twice the retention after it was written. STREAMREC_ERASURE_MARKER_HOURS")
    datadir: str = Field("", description="Worker data dir. Default <cache_dir>/worker/<app_id>. STREAMREC_DATADIR")
    worker_id: str = Field(
        "",
        description="Static group membership id of this worker: a restarted worker with the same id takes its "
        "partitions back without a rebalance. Unique per worker; empty: dynamic membership. STREAMREC_WORKER_ID",
    )
    session_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a silent worker keeps its partitions. STREAMREC_SESSION_TIMEOUT_SECONDS"
    )
    event_loop: Literal["aio", "uvloop"] = Field(
        "uvloop", description="The worker's event loop: aio (asyncio's own) or uvloop (what `faust -L uvloop` "
        "runs). STREAMREC_EVENT_LOOP")
    faust_cython: bool = Field(
        False, description="Faust's `cython_optimizations`: the Cython stream iterator takes events already in its "
        "buffer without awaiting the queue. Off: no gain measured (docs/PERFORMANCE.md, \"Faust's own path\"), "
        "and Faust calls that path new. STREAMREC_FAUST_CYTHON")
    faust_monitor: Literal["quiet", "full"] = Field(
        "full", description="Faust's Monitor: quiet does no per-event bookkeeping (only the last event time per "
        "partition, which Faust's stall warnings read); full is Faust's own (no gain measured from quiet). "
        "streamrec's metrics do not use it. STREAMREC_FAUST_MONITOR")
    faust_lean_drain: bool = Field(
        True, description="Hand each fetched message to the streams directly when that needs no waiting, instead "
        "of through mode's wait_first (four tasks a message); a shim over faust-streaming 0.15.3's "
        "Consumer._drain_messages, off by itself on any other version. STREAMREC_FAUST_LEAN_DRAIN")
    faust_lean_take: bool = Field(
        True, description="The agents take their micro-batches from their stream's queue in bulk (stream/faustapp/"
        "take.py), instead of through Faust's take_events (a trip through the event loop, a processor and an ack "
        "coroutine an event, and a wait of STREAMREC_BATCH_WITHIN_SECONDS after every batch); a shim over "
        "faust-streaming 0.15.3's stream internals, off by itself on any other version. STREAMREC_FAUST_LEAN_TAKE")
    gc_threshold: int = Field(
        50_000, ge=0, description="The worker's garbage collector: what is alive at start-up is frozen (never "
        "walked again) and the youngest generation is collected every this many allocations (CPython's default: "
        "700). 0 leaves CPython's defaults. STREAMREC_GC_THRESHOLD")
    batch_size: int = Field(500, ge=1, description="Micro-batch size. STREAMREC_BATCH_SIZE")
    batch_within_seconds: float = Field(
        0.05, gt=0, description="Micro-batch time bound: a batch goes to the agent when it holds "
        "STREAMREC_BATCH_SIZE events, or this long after the batch before it went (events that queued meanwhile go at "
        "once): below full load, larger is fewer batches, less CPU an event and older events. With "
        "STREAMREC_FAUST_LEAN_TAKE off, Faust's take_events waits this long after every batch. "
        "STREAMREC_BATCH_WITHIN_SECONDS")
    item_publish_seconds: float = Field(
        0.5, gt=0, description="How long an item owner gathers gradients before it publishes the changed item rows "
        "(each row once per period: fewer item-factors messages, item rows at most this much older at other "
        "workers). An owner of several partitions takes them one at a time, spread over the period. "
        "STREAMREC_ITEM_PUBLISH_SECONDS")
    consumer_fetch_bytes: int = Field(
        16384, ge=1024, description="Bytes a fetch takes from each partition at most. The consumer hands over a "
        "fetch's records partition after partition, so a large fetch lets one topic run far ahead of the others "
        "in event time (a user's dwell read long before their click); small fetches keep the topics of a user's "
        "events close. STREAMREC_CONSUMER_FETCH_BYTES")
    outbox_resend_seconds: float = Field(
        30.0, gt=0, description="Item updates committed this long ago and still in the outbox (a crash, a broker "
        "outage) are sent to their owners again; owners drop repeats. STREAMREC_OUTBOX_RESEND_SECONDS")
    owner_dedupe_seconds: int = Field(
        3600, ge=60, description="How long an item owner remembers the id of an item update it applied, at least "
        "(at most 1.5 times as long): an outbox resend (the same update again, at a new offset) within it is "
        "dropped; Kafka's redeliveries of item-updates are dropped by each partition's applied offset, whatever "
        "their age. A resend later than this is applied a second time (its MF gradients, co-occurrence counts and "
        "popularity twice): that takes an outbox entry left undelivered longer than this, i.e. a broker outage "
        "that long. Ids are kept as they are (an update's id is a hash of its batch's event ids; it names no "
        "user). Default: max(3600, 10 x STREAMREC_OUTBOX_RESEND_SECONDS). STREAMREC_OWNER_DEDUPE_SECONDS")
    batch_log_path: str = Field(
        "", description="A file the worker appends one JSON line per committed batch to (the batch's event ids, "
        "in order): what `streamrec evaluate --through-worker` replays offline. Empty: no log. "
        "STREAMREC_BATCH_LOG_PATH")
    explore_share: float = Field(
        0.1, ge=0, le=1, description="Share of recommendation lists whose last slot goes to a fresh item (one with "
        "little positive signal yet), so new items can earn clicks; 0 turns exploration off. STREAMREC_EXPLORE_SHARE")
    explore_max_positive_weight: float = Field(
        5.0, ge=0, description="An item is fresh while its summed positive signal is below this. "
        "STREAMREC_EXPLORE_MAX_POSITIVE_WEIGHT")
    top_k: int = Field(10, ge=1, le=1000, description="Length of a pushed recommendation list. STREAMREC_TOP_K")
    diversity_lambda: float = Field(
        0.0, ge=0, le=1, description="λ of the MMR re-ranking of warm users' lists (stream/models/diversity.py): "
        "each slot takes the candidate maximising (1-λ)·relevance - λ·(max cosine of its MF row to those picked); "
        "0 is pure relevance (no re-ranking). STREAMREC_DIVERSITY_LAMBDA")
    coverage_window_seconds: float = Field(
        3600.0, gt=0, description="Catalogue coverage of pushed lists (streamrec_pushed_coverage_ratio) counts the "
        "distinct items pushed within this many seconds. STREAMREC_COVERAGE_WINDOW_SECONDS")
    rec_min_interval_seconds: float = Field(
        1.0, ge=0, description="At most one push per user per this many seconds. STREAMREC_REC_MIN_INTERVAL_SECONDS"
    )
    experiments_path: str = Field(
        "", description="A TOML file of experiments (stream/experiments/definition.py: segments, variants, shares, "
        "serving overrides); the worker checks it at start. Empty: no experiments. STREAMREC_EXPERIMENTS_PATH")
    attribution_window_seconds: int = Field(
        3600, ge=0, le=30 * 86400, description="How long a served list can be attributed the events that name its "
        "rec_id (its record's lifetime in Redis); 0 turns attribution off. STREAMREC_ATTRIBUTION_WINDOW_SECONDS")
    popularity_half_life_seconds: float = Field(
        86400.0, gt=0, description="Half-life of segment popularity, in event time. STREAMREC_POPULARITY_HALF_LIFE_SECONDS"
    )
    segment_popularity_cache_seconds: float = Field(
        1.0, ge=0, le=60, description="How long the worker keeps the segment popularity scores its rankings read "
        "(the re-ranker's feature), brought up to date with its own commits: with several workers, another "
        "worker's increments show this much later at most; 0 reads them from Redis every time. "
        "STREAMREC_SEGMENT_POPULARITY_CACHE_SECONDS")
    dedupe_ttl_seconds: int = Field(
        600, ge=60, description="How long an applied event_id is remembered at least, to drop a producer's resend "
        "(redeliveries by Kafka are dropped by the partitions' applied offsets, whatever their age). "
        "STREAMREC_DEDUPE_TTL_SECONDS")
    history_max: int = Field(500, ge=1, description="Items kept per user as 'seen'. STREAMREC_HISTORY_MAX")
    max_trials_per_batch: int = Field(
        0, ge=0, description="At most this many prequential trials scored per micro-batch, a seeded draw when "
        "there are more (each is a ranking of the whole catalogue); 0: every one. STREAMREC_MAX_TRIALS_PER_BATCH")
    trial_share: float = Field(
        0.25, gt=0, le=1, description="The share of prequential trials (clicks on items new to the user) scored "
        "for the online hit rate and learned from by the re-rankers and guards: a stable draw by event id. Each "
        "is a ranking of the whole catalogue. STREAMREC_TRIAL_SHARE")
    segment_attributes: str = Field(
        "segment",
        description="Comma-separated profile attributes whose values name a user's segment. STREAMREC_SEGMENT_ATTRIBUTES",
    )
    max_segments: int = Field(
        32, ge=1, description="At most this many profile segments; users of later ones go to 'other'. "
        "STREAMREC_MAX_SEGMENTS")
    behaviour_segments: int = Field(
        4, ge=0, le=32, description="Users without a profile segment are clustered online (River k-means over "
        "activity, dwell, skip rate and taste) into this many behaviour segments, behaviour-0 .. behaviour-N-1; "
        "0 puts them in the default segment. STREAMREC_BEHAVIOUR_SEGMENTS")
    segment_models: bool = Field(
        True, description="Per-segment River re-rankers over the blend's candidates, each with a guard that falls "
        "back to the blend's ranking while the segment's re-ranker does worse (false: the blend alone). "
        "STREAMREC_SEGMENT_MODELS")
    drift_delta: float = Field(
        0.002, gt=0, lt=1, description="ADWIN confidence of the drift detectors (smaller: fewer false alarms, "
        "later detections). STREAMREC_DRIFT_DELTA")
    drift_window_seconds: float = Field(
        10.0, gt=0, description="Window over which ctr and skip rate are counted before the detectors see them "
        "(must be much longer than the skew between topics). STREAMREC_DRIFT_WINDOW_SECONDS")
    drift_active_seconds: float = Field(
        600.0, gt=0, description="How long streamrec_drift_active stays 1 after a detection. STREAMREC_DRIFT_ACTIVE_SECONDS")
    model_config_path: str = Field(
        "",
        description="A model configuration file written by `streamrec tune` (stream/models/configs/ has tuned ones); "
        "the worker checks and loads it at start. Empty: the built-in defaults. STREAMREC_MODEL_CONFIG_PATH",
    )
    mf_factors: int = Field(
        32, ge=1, le=512, description="Factors of the worker's MF model when no model configuration file names them. "
        "STREAMREC_MF_FACTORS")
    default_segment: str = Field("all", description="Segment of users without those attributes. STREAMREC_DEFAULT_SEGMENT")

    # --- local stack --------------------------------------------------------
    cache_dir: str = Field("", description="Jars, data sets, stack data. Default ~/.cache/streamrec. STREAMREC_CACHE_DIR")
    kafka_version: str = Field("4.0.1", description="Apache Kafka version fetched from Maven Central. STREAMREC_KAFKA_VERSION")
    kafka_port: int = Field(9092, description="Local broker port. STREAMREC_KAFKA_PORT")
    kafka_controller_port: int = Field(9093, description="Local KRaft controller port. STREAMREC_KAFKA_CONTROLLER_PORT")
    redis_port: int = Field(6379, description="Local redis-server port. STREAMREC_REDIS_PORT")
    prometheus_port: int = Field(9090, description="Local Prometheus port. STREAMREC_PROMETHEUS_PORT")
    prometheus_targets: str = Field(
        "", description="Worker host:port list Prometheus scrapes. Default localhost:<web_port>. STREAMREC_PROMETHEUS_TARGETS"
    )
    stack_dir: str = Field("", description="Local stack data and logs. Default <cache_dir>/stack. STREAMREC_STACK_DIR")

    @model_validator(mode="before")
    @classmethod
    def _derive_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        # Sources (init kwargs, STREAMREC_* variables) are merged into ``data`` already.
        kafka_port = int(data.get("kafka_port") or 9092)
        redis_port = int(data.get("redis_port") or 6379)
        web_port = int(data.get("web_port") or 6066)
        if not data.get("bootstrap_servers"):
            data["bootstrap_servers"] = f"localhost:{kafka_port}"
        if not data.get("redis_url"):
            data["redis_url"] = f"redis://localhost:{redis_port}/0"
        if not data.get("prometheus_targets"):
            data["prometheus_targets"] = f"localhost:{web_port}"
        if not data.get("owner_dedupe_seconds"):
            data["owner_dedupe_seconds"] = max(3600, math.ceil(10 * float(data.get("outbox_resend_seconds") or 30.0)))
        if not data.get("erasure_marker_hours"):
            data["erasure_marker_hours"] = 2 * float(data.get("event_retention_hours") or 168.0)
        return data

    @model_validator(mode="after")
    def _check_id_key(self) -> "Settings":
        for name, what in (("id_key", "the pseudonyms"), ("erasure_key", "the erasure markers")):
            key = getattr(self, name).get_secret_value()
            if key and len(key) < 16:
                raise ValueError(f"STREAMREC_{name.upper()} has {len(key)} characters: it needs at least 16 (a random "
                                 f"32-byte hex string is recommended), or {what} can be guessed")
        if self.owner_dedupe_seconds < 2 * self.outbox_resend_seconds:
            raise ValueError(f"STREAMREC_OWNER_DEDUPE_SECONDS is {self.owner_dedupe_seconds}: it must be at least twice "
                             f"STREAMREC_OUTBOX_RESEND_SECONDS ({self.outbox_resend_seconds:g}), or an outbox resend "
                             "could come after its update's id was forgotten and be applied twice")
        self.check_redis_prefix()
        if self.erasure_marker_hours < self.event_retention_hours:
            raise ValueError(f"STREAMREC_ERASURE_MARKER_HOURS is {self.erasure_marker_hours:g}: it must be at least "
                             f"STREAMREC_EVENT_RETENTION_HOURS ({self.event_retention_hours:g}), or an erased user's "
                             "event still on Kafka could bring them back after their marker expired")
        return self

    # --- derived ------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    @property
    def stack_path(self) -> Path:
        return Path(self.stack_dir).expanduser() if self.stack_dir else self.cache_path / "stack"

    @property
    def datadir_path(self) -> Path:
        return Path(self.datadir).expanduser() if self.datadir else self.cache_path / "worker" / self.app_id

    @property
    def segment_attribute_list(self) -> list[str]:
        return [a.strip() for a in self.segment_attributes.split(",") if a.strip()]

    def topic(self, name: str) -> str:
        """The real topic name of a logical one (see :data:`TOPIC_NAMES`)."""
        return f"{self.topic_prefix}{name}"

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka (confluent-kafka) settings for bootstrap and security."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol.endswith("SSL") and self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = self.kafka_ssl_cafile
        return conf

    def as_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for a child process with exactly these settings: ``base`` (default
        this process's environment) without its STREAMREC_* variables, plus one per setting."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("STREAMREC_")}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"STREAMREC_{name.upper()}"] = str(value)
        return env

    def check_redis_prefix(self) -> None:
        """On a Redis Cluster, the prefix must carry a hash tag (every script touches keys of one slot).

        >>> Settings(redis_cluster=True, redis_prefix="{shop}").check_redis_prefix()
        >>> Settings().model_copy(update={"redis_cluster": True, "redis_prefix": "shop"}).check_redis_prefix()
        Traceback (most recent call last):
        ...
        ValueError: STREAMREC_REDIS_CLUSTER is set and STREAMREC_REDIS_PREFIX 'shop' has no hash tag: ...
        """
        from stream.state.keys import prefix_hash_tag

        if self.redis_cluster and prefix_hash_tag(self.redis_prefix) is None:
            raise ValueError(f"STREAMREC_REDIS_CLUSTER is set and STREAMREC_REDIS_PREFIX {self.redis_prefix!r} has no "
                             "hash tag: every key of a deployment must hash to one slot of the cluster, so give the "
                             f"prefix one, for example {{{self.redis_prefix.strip('{}') or 'streamrec'}}}")

    def run_prefix(self, name: str) -> str:
        """A Redis prefix for a run's own keys (a benchmark, an evaluation): ``name``, as a hash
        tag on a Redis Cluster.

        >>> Settings().run_prefix("bench:1"), Settings(redis_cluster=True, redis_prefix="{s}").run_prefix("bench:1")
        ('bench:1', '{bench:1}')
        """
        return f"{{{name}}}" if self.redis_cluster else name

    def redis_client(self, *, asyncio: bool = False, **options: Any):
        """A redis-py client of STREAMREC_REDIS_URL with the ACL user and password, async with
        ``asyncio``; a cluster client when STREAMREC_REDIS_CLUSTER is set. ``options``: more
        keyword arguments (timeouts, retries)."""
        self.check_redis_prefix()
        if asyncio:
            import redis.asyncio as module
        else:
            import redis as module
        kind = module.RedisCluster if self.redis_cluster else module.Redis
        return kind.from_url(self.redis_url, **self.redis_kwargs(), **options)

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url``: the ACL user and password, when set."""
        kwargs: dict[str, Any] = {}
        if self.redis_username:
            kwargs["username"] = self.redis_username
        if self.redis_password.get_secret_value():
            kwargs["password"] = self.redis_password.get_secret_value()
        return kwargs

    def http_headers(self) -> dict[str, str]:
        """Headers a client of the worker's HTTP API sends: the bearer token, when one is set.

        >>> Settings(http_token="t0ken").http_headers()
        {'Authorization': 'Bearer t0ken'}
        >>> Settings().http_headers()
        {}
        """
        token = self.http_token.get_secret_value()
        return {"Authorization": f"Bearer {token}"} if token else {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
