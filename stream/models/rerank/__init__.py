"""Per-segment re-ranking of the blend's candidates: River layers with transfer, and a guard.

A segment's layer starts as the blend's ranking and learns from the segment's own clicks
(:mod:`~stream.models.rerank.layers`); its guard serves the blend's ranking while the
layer does worse (:mod:`~stream.models.rerank.guard`). The engine runs them
(:mod:`stream.engine.rank`); their state sits behind :mod:`stream.state`.
"""

from stream.models.rerank.features import COLUMNS
from stream.models.rerank.guard import SegmentGuard
from stream.models.rerank.layers import SHARED_LAYER, SegmentLayers
from stream.models.rerank.params import SEGMENT_KEYS, RerankParams

__all__ = ["COLUMNS", "SHARED_LAYER", "SEGMENT_KEYS", "RerankParams", "SegmentGuard", "SegmentLayers"]
