"""Offline evaluation of the learning core: the prequential protocol, baselines, datasets,
benchmarks and hyperparameter search (``streamrec evaluate|tune|bench``).

Submodules are imported on use; importing this package is cheap.
"""

__all__ = ["baselines", "bench", "cli", "datasets", "prequential", "run", "segments", "tune", "tune_segments"]
