"""The worker's long-lived objects, created once, lazily, inside the worker's event loop.

    redis -> RedisState ----------------------------.
    ItemTable (every item row; owned ones authoritative)  > Engine -> Pusher -> Ingest (the ingest agent)
    KafkaPublisher -> KafkaBus (item updates out) ---'
    ItemOwner (the item-updates agent), ItemCopy (the item-factors reader)
    Ingest -> Eraser (the user-erasures agent)
"""

from __future__ import annotations

import asyncio
from functools import cached_property

from stream.app import TOPIC_EVENT_TYPES, settings
from stream.engine.alerts import DriftWatch
from stream.engine.config import EngineConfig
from stream.engine.engine import Engine
from stream.engine.erase import Eraser
from stream.engine.ingest import Ingest
from stream.engine.items import ItemCopy, ItemOwner, KafkaBus
from stream.engine.publisher import KafkaPublisher
from stream.engine.push import Pusher
from stream.metrics import METRICS
from stream.models.items import ItemTable
from stream.state.redis import RedisState

__all__ = ["runtime"]


class Runtime:
    @cached_property
    def redis(self):
        return settings.redis_client(asyncio=True)

    @cached_property
    def model_config(self) -> dict | None:
        """The model configuration file named by STREAMREC_MODEL_CONFIG_PATH, checked; None without one."""
        if not settings.model_config_path:
            return None
        from stream.models.config_io import load_model_config

        return load_model_config(settings.model_config_path)

    @cached_property
    def config(self) -> EngineConfig:
        return EngineConfig.from_settings(settings, self.model_config)

    @cached_property
    def table(self) -> ItemTable:
        return ItemTable(self.config.hybrid)

    @cached_property
    def state(self) -> RedisState:
        return RedisState.for_engine(self.redis, settings, self.config, self.table.mf.k)

    @cached_property
    def publisher(self) -> KafkaPublisher:
        return KafkaPublisher(settings)

    @cached_property
    def bus(self) -> KafkaBus:
        return KafkaBus(self.publisher, self.state)

    @cached_property
    def experiment_state(self):
        from stream.experiments.state import RedisExperiments

        return RedisExperiments.beside(self.state)

    @cached_property
    def experiments(self):
        """The experiments of STREAMREC_EXPERIMENTS_PATH (checked at start), or None."""
        from stream.experiments.serving import Serving

        return Serving.from_settings(settings, self.config, self.table, self.experiment_state, METRICS)

    @cached_property
    def attribution(self):
        """Served lists and the events naming them (None when STREAMREC_ATTRIBUTION_WINDOW_SECONDS is 0)."""
        from stream.experiments.attribution import Attribution

        return Attribution.from_settings(self.experiment_state, settings)

    @cached_property
    def engine(self) -> Engine:
        return Engine(self.config, self.state, self.table, self.bus, experiments=self.experiments,
                      segment_popularity_seconds=settings.segment_popularity_cache_seconds)

    @cached_property
    def owner(self) -> ItemOwner:
        return ItemOwner(self.table, self.state)

    @cached_property
    def copy(self) -> ItemCopy:
        return ItemCopy(self.table)

    @cached_property
    def pusher(self) -> Pusher:
        return Pusher.from_settings(self.engine, self.publisher, METRICS, settings, lists=self.attribution)

    @cached_property
    def drift(self) -> DriftWatch:
        return DriftWatch.from_settings(settings, METRICS)

    @cached_property
    def ingest(self) -> Ingest:
        return Ingest(self.engine, self.pusher, self.publisher, METRICS, topic_types=TOPIC_EVENT_TYPES,
                      drift=self.drift, batch_log=settings.batch_log_path or None, attribution=self.attribution)

    @cached_property
    def eraser(self) -> Eraser:
        return Eraser(self.ingest)

    @cached_property
    def items_ready(self) -> asyncio.Event:
        """Set once this worker's copy of the item rows has read item-factors to its end at start."""
        return asyncio.Event()


runtime = Runtime()
