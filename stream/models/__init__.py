"""Online ranking models: NumPy matrix factorization, co-occurrence, popularity, a hybrid blend,
segments and per-segment River re-rankers.

Every model has one shape (see :mod:`stream.models.base`): ``learn_one``/``learn_many``
return None, ``scores``/``rank`` read, ``state``/``save``/``load`` use plain arrays.
Importing this package pulls NumPy only (River is imported when a re-ranker or a behaviour
segmenter is built).
"""

from stream.models.base import IdIndex, OnlineModel, SeenItems, top_k
from stream.models.behaviour import BehaviourSegmenter
from stream.models.config_io import build_model, load_model_config, save_model_config
from stream.models.cooccurrence import Cooccurrence
from stream.models.hybrid import HybridRanker
from stream.models.mf import OnlineMF
from stream.models.popularity import Popularity
from stream.models.rerank import SegmentedRanker
from stream.models.segments import ProfileSegmenter

__all__ = [
    "BehaviourSegmenter",
    "Cooccurrence",
    "HybridRanker",
    "IdIndex",
    "OnlineMF",
    "OnlineModel",
    "Popularity",
    "ProfileSegmenter",
    "SeenItems",
    "SegmentedRanker",
    "build_model",
    "load_model_config",
    "save_model_config",
    "top_k",
]
