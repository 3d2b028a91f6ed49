"""The model concepts, each written once: online MF, item co-occurrence, decayed popularity,
their blend, segment re-rankers with their guard, profile and behaviour segments.

They are Faust-free and state-free: a batch's state is loaded for them and their changes
handed back (:mod:`stream.state`), which the engine (:mod:`stream.engine`) does offline and
in the worker alike. Importing this package pulls NumPy only (River is imported when a
re-ranker or a behaviour model is built).
"""

from stream.models.base import IdIndex, OnlineModel, Ranker, SeenItems, Trial, top_k
from stream.models.config_io import load_model_config, save_model_config
from stream.models.hybrid import HybridParams
from stream.models.mf import OnlineMF

__all__ = ["HybridParams", "IdIndex", "OnlineMF", "OnlineModel", "Ranker", "SeenItems", "Trial", "load_model_config",
           "save_model_config", "top_k"]
