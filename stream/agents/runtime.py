"""The worker's long-lived objects (Redis client, store, ingestor), created once, lazily,
inside the worker's event loop."""

from __future__ import annotations

import asyncio
from functools import cached_property

from stream.agents.behaviour_segments import BehaviourSegments
from stream.agents.item_model import ItemFactors, ItemOwner
from stream.agents.learner import Learner
from stream.agents.pipeline import Ingestor
from stream.agents.publisher import KafkaPublisher
from stream.agents.segment_models import SegmentModels, rerank_params
from stream.app import TOPIC_EVENT_TYPES, settings
from stream.drift import DriftMonitor
from stream.metrics import METRICS
from stream.models.sharded import ShardedMF
from stream.store.embeddings import EmbeddingWriter
from stream.store.keys import Keys
from stream.store.popularity import PopularityStore

__all__ = ["runtime", "mf_params"]


def mf_params(config: dict | None, default_factors: int) -> dict:
    """The worker's MF parameters from a model configuration (an OnlineMF, the MF part of a
    HybridRanker, or that of a SegmentedRanker's global model), else the defaults with
    ``default_factors`` factors.

    >>> mf_params({"model": "SegmentedRanker", "params": {"global_model": "HybridRanker",
    ...            "global_params": {"mf": {"n_factors": 24}}}}, 32)
    {'n_factors': 24}
    >>> mf_params({"model": "OnlineMF", "params": {"n_factors": 8}}, 32), mf_params(None, 32)
    ({'n_factors': 8}, {'n_factors': 32})
    """
    model, params = (config["model"], config["params"]) if config is not None else (None, {})
    if model == "SegmentedRanker":  # the global model's part (the re-rankers: segment_models.rerank_params)
        model, params = params.get("global_model"), params.get("global_params") or {}
    if model == "OnlineMF":
        return dict(params)
    if model == "HybridRanker" and params.get("mf"):
        return dict(params["mf"])
    return {"n_factors": default_factors}


class Runtime:
    @cached_property
    def redis(self):
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())

    @cached_property
    def model_config(self) -> dict | None:
        """The model configuration file named by STREAMREC_MODEL_CONFIG_PATH, checked; None without one."""
        if not settings.model_config_path:
            return None
        from stream.models.config_io import load_model_config

        return load_model_config(settings.model_config_path)

    @cached_property
    def mf_params(self) -> dict:
        return mf_params(self.model_config, settings.mf_factors)

    @cached_property
    def mf(self) -> ShardedMF:
        return ShardedMF(self.mf_params)

    @cached_property
    def publisher(self) -> KafkaPublisher:
        return KafkaPublisher(settings)

    @cached_property
    def learner(self) -> Learner:
        return Learner(self.mf, self.redis, self.keys, partitions=settings.partitions,
                       source=settings.worker_id or settings.app_id,
                       behaviour_fields=BehaviourSegments.fields if self.behaviour is not None else ())

    @cached_property
    def behaviour(self) -> BehaviourSegments | None:
        if not settings.behaviour_segments:
            return None
        return BehaviourSegments(self.redis, self.keys, METRICS, n_clusters=settings.behaviour_segments,
                                 n_factors=self.mf.k)

    @cached_property
    def item_owner(self) -> ItemOwner:
        return ItemOwner(self.mf, self.publisher.item_row, self.publisher.flush, EmbeddingWriter(self.redis, self.keys),
                         METRICS, self.ingestor.reject)

    @cached_property
    def item_factors(self) -> ItemFactors:
        return ItemFactors(self.mf, METRICS)

    @cached_property
    def items_ready(self) -> asyncio.Event:
        """Set once this worker's copy of the item rows has read item-factors to its end at start."""
        return asyncio.Event()

    @cached_property
    def segmenter(self):
        from stream.agents.catalogue import profile_segmenter

        return profile_segmenter(self.model_config, settings.segment_attribute_list, settings.max_segments)

    @cached_property
    def segment_models(self) -> SegmentModels | None:
        if not settings.segment_models:
            return None
        return SegmentModels(self.mf, self.redis, self.keys, rerank_params(self.model_config), METRICS)

    @cached_property
    def keys(self) -> Keys:
        return Keys(settings.redis_prefix)

    @cached_property
    def store(self) -> PopularityStore:
        return PopularityStore(
            self.redis,
            self.keys,
            half_life_seconds=settings.popularity_half_life_seconds,
            dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
            history_max=settings.history_max,
        )

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(
            self.store,
            self.publisher,
            METRICS,
            topic_types=TOPIC_EVENT_TYPES,
            default_segment=settings.default_segment,
            top_k=settings.top_k,
            rec_min_interval_seconds=settings.rec_min_interval_seconds,
            drift=DriftMonitor(delta=settings.drift_delta),
            drift_active_seconds=settings.drift_active_seconds,
            drift_window_seconds=settings.drift_window_seconds,
            learner=self.learner,
            explore_share=settings.explore_share,
            explore_max_positive_weight=settings.explore_max_positive_weight,
            segment_models=self.segment_models,
            behaviour=self.behaviour,
        )


runtime = Runtime()
