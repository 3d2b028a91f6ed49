"""streamrec: a streaming real-time recommender (Faust, Kafka, Redis, NumPy, River).

Kept free of heavy imports: ``import stream`` must stay cheap.
"""

__version__ = "0.1.0"
