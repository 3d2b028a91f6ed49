"""Online ranking models: NumPy matrix factorization, co-occurrence, popularity, a hybrid blend.

Every model has one shape (see :mod:`stream.models.base`): ``learn_one``/``learn_many``
return None, ``scores``/``rank`` read, ``state``/``save``/``load`` use plain arrays.
Importing this package pulls NumPy only.
"""

from stream.models.base import IdIndex, OnlineModel, SeenItems, top_k
from stream.models.config_io import build_model, load_model_config, save_model_config
from stream.models.cooccurrence import Cooccurrence
from stream.models.hybrid import HybridRanker
from stream.models.mf import OnlineMF
from stream.models.popularity import Popularity

__all__ = [
    "Cooccurrence",
    "HybridRanker",
    "IdIndex",
    "OnlineMF",
    "OnlineModel",
    "Popularity",
    "SeenItems",
    "build_model",
    "load_model_config",
    "save_model_config",
    "top_k",
]
