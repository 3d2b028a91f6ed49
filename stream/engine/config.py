"""The engine's configuration: one frozen object for ``evaluate`` and the worker alike.

:meth:`EngineConfig.from_settings` builds it from the settings (``STREAMREC_*``) and the model
configuration file ``streamrec tune`` writes (``STREAMREC_MODEL_CONFIG_PATH``): the blend, the
re-ranker and the segmenter the file was tuned with, whole.

Examples
--------
>>> from stream.config import Settings
>>> config = EngineConfig.from_settings(Settings(segment_models=False, behaviour_segments=0))
>>> config.rerank is None, config.behaviour is None, config.hybrid.cooccurrence_weight
(True, True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from stream.models.config_io import hybrid_params, rerank_params
from stream.models.diversity import check_lambda
from stream.models.hybrid import HybridParams
from stream.models.rerank.params import RerankParams
from stream.models.segments.behaviour import BehaviourParams
from stream.models.segments.profile import ProfileSegmenter

__all__ = ["EngineConfig", "MODEL_NAMES"]

#: What a list's ``model`` field says ranked it.
MODEL_NAMES = {
    "cold": "segment-popularity-v1",  # a user with no signal yet: their segment's trending items
    "hybrid": "hybrid-v2",  # the blend (MF + co-occurrence + popularity)
    "rerank": "hybrid-v2+segment-rerank-v2",  # the blend's candidates, re-ranked by the segment's layer
}


@dataclass(frozen=True)
class EngineConfig:
    """Everything that decides what the engine learns and serves.

    Parameters
    ----------
    hybrid
        The first stage: blend weights and the MF, co-occurrence and popularity parts.
    rerank
        The segment re-rankers and their guards; None: the blend is served as is.
    behaviour
        Behaviour segmentation of users whose profile names no segment; None: they are in
        ``default_segment``.
    top_k
        Length of a pushed list and of a prequential trial's list.
    history_max
        Items kept per user as seen (the oldest are forgotten, and may be recommended again).
    segment_half_life
        Half-life (event-time seconds) of segment popularity (cold start; a re-ranker feature).
    explore_share, explore_max_positive_weight
        The share of lists whose last slot goes to a fresh item, and what counts as fresh.
    segmenter
        :class:`~stream.models.segments.profile.ProfileSegmenter` arguments (profile segments).
    max_segments
        Profile segments past this many go to ``other``.
    default_segment
        The segment of a user with neither a profile segment nor a behaviour one.
    partitions
        Item-updates partitions: an item's owner is ``item_partition(item_id, partitions)``.
    n_factors_default
        MF factors when the model configuration does not name them.
    max_trials
        At most this many prequential trials are scored per micro-batch (a draw seeded by the
        batch's event ids when there are more); None: every one. Each scored trial is a ranking
        over the whole catalogue; the unscored ones are not counted (hit rates stay unbiased).
    trial_share
        The share of prequential trials scored (:func:`stream.signals.scored`: a stable draw by
        event id), in (0, 1]; 1: every one. A trial not scored is not counted, and the re-rankers
        and guards do not learn from it.
    diversity
        λ of the MMR re-ranking of warm users' lists (:mod:`stream.models.diversity`), in [0, 1];
        0 (the default): pure relevance, no re-ranking at all.
    """

    hybrid: HybridParams = field(default_factory=HybridParams)
    rerank: RerankParams | None = field(default_factory=RerankParams)
    behaviour: BehaviourParams | None = field(default_factory=BehaviourParams)
    top_k: int = 10
    history_max: int = 500
    segment_half_life: float = 86400.0
    explore_share: float = 0.1
    explore_max_positive_weight: float = 5.0
    segmenter: dict[str, Any] = field(default_factory=lambda: {"attributes": ["segment"], "max_segments": 32})
    max_segments: int = 32
    default_segment: str = "all"
    partitions: int = 4
    max_trials: int | None = None
    trial_share: float = 1.0
    diversity: float = 0.0

    def __post_init__(self) -> None:
        if self.max_trials is not None and self.max_trials < 1:
            raise ValueError(f"EngineConfig: max_trials must be >= 1 or None, got {self.max_trials}")
        if not 0.0 < self.trial_share <= 1.0:
            raise ValueError(f"EngineConfig: trial_share must be in (0, 1], got {self.trial_share}")
        if self.top_k < 1 or self.history_max < 1:
            raise ValueError(f"EngineConfig: top_k and history_max must be >= 1, got {self.top_k}, {self.history_max}")
        if not 0.0 <= self.explore_share <= 1.0:
            raise ValueError(f"EngineConfig: explore_share must be in [0, 1], got {self.explore_share}")
        check_lambda(self.diversity, "EngineConfig: diversity")

    def profile_segmenter(self) -> ProfileSegmenter:
        return ProfileSegmenter(**self.segmenter)

    def with_changes(self, **changes) -> "EngineConfig":
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """What this configuration serves, as plain data (``/health``, reports)."""
        return {"hybrid": self.hybrid.as_dict(), "rerank": None if self.rerank is None else self.rerank.as_dict(),
                "behaviour": None if self.behaviour is None else self.behaviour.as_dict(), "top_k": self.top_k,
                "history_max": self.history_max, "segment_half_life": self.segment_half_life,
                "explore_share": self.explore_share, "segmenter": self.segmenter,
                "default_segment": self.default_segment, "max_trials": self.max_trials,
                "trial_share": self.trial_share, "diversity": self.diversity}

    @classmethod
    def from_settings(cls, settings, model_config: dict[str, Any] | None = None) -> "EngineConfig":
        """The worker's configuration: the settings, and the model configuration file when given."""
        hybrid = hybrid_params(model_config)
        if model_config is None or "n_factors" not in (hybrid.mf or {}):
            hybrid = replace(hybrid, mf={**hybrid.mf_params, "n_factors": settings.mf_factors})
        attributes = settings.segment_attribute_list
        fitted = ((model_config or {}).get("source") or {}).get("segmenter")
        if fitted and list(fitted.get("attributes", [])) == list(attributes):
            segmenter = dict(fitted)
        else:
            segmenter = {"attributes": attributes or ["segment"], "max_segments": settings.max_segments}
        return cls(
            hybrid=hybrid,
            rerank=rerank_params(model_config) if settings.segment_models else None,
            behaviour=BehaviourParams(n_clusters=settings.behaviour_segments) if settings.behaviour_segments else None,
            top_k=settings.top_k,
            history_max=settings.history_max,
            segment_half_life=settings.popularity_half_life_seconds,
            explore_share=settings.explore_share,
            explore_max_positive_weight=settings.explore_max_positive_weight,
            segmenter=segmenter,
            max_segments=settings.max_segments,
            default_segment=settings.default_segment,
            partitions=settings.partitions,
            max_trials=settings.max_trials_per_batch or None,
            trial_share=settings.trial_share,
            diversity=settings.diversity_lambda,
        )
