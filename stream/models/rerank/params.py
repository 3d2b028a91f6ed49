"""The segment re-ranker's parameters, with per-segment overrides.

Examples
--------
>>> p = RerankParams(segment_params={"kids": {"learning_rate": 0.1}})
>>> p.of("kids", "learning_rate"), p.of("adults", "learning_rate")
(0.1, 0.02)
>>> RerankParams(segment_params={"kids": {"seed": 3}})
Traceback (most recent call last):
...
ValueError: RerankParams: segment_params['kids'] has ['seed']; a segment may override only ['learning_rate', 'l2', 'n_candidates', 'n_negatives', 'guard_margin', 'guard_window', 'guard_min_trials', 'guard_z']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["RerankParams", "SEGMENT_KEYS"]

#: Parameters a segment may override in ``segment_params``.
SEGMENT_KEYS = ("learning_rate", "l2", "n_candidates", "n_negatives", "guard_margin", "guard_window",
                "guard_min_trials", "guard_z")


@dataclass(frozen=True)
class RerankParams:
    """Re-ranking of the blend's top candidates per segment (docs/MODELS.md, "Per-segment re-ranking").

    Parameters
    ----------
    n_candidates
        The blend's top-N that the layers re-order.
    learning_rate, l2
        SGD step and L2 of the segment layers (River ``LogisticRegression``).
    n_negatives
        Candidates a clicked candidate is contrasted with (drawn with a seed of the event id).
    init_weight
        The shared layer's initial weight on ``global`` (the transfer).
    shared, shared_learning_rate
        Whether the shared layer exists, and its step (None: ``learning_rate``).
    guard_window, guard_margin, guard_min_trials, guard_z
        Of each segment's :class:`~stream.models.rerank.guard.SegmentGuard`.
    segment_params
        Per segment, overrides of :data:`SEGMENT_KEYS` (``streamrec tune --space rerank`` writes them).
    max_learning
        At most this many clicked candidates of one segment teach its layers per micro-batch (a
        draw seeded by the batch's event ids when there are more; None: every one): River learns
        one example at a time, so this bounds a batch's learning time whatever its size.
    seed
        Seed of the negatives' draws.
    """

    n_candidates: int = 100
    learning_rate: float = 0.02
    l2: float = 0.0
    n_negatives: int = 4
    init_weight: float = 4.0
    shared: bool = True
    shared_learning_rate: float | None = None
    guard_window: int = 500
    guard_margin: float = 0.01
    guard_min_trials: int = 100
    guard_z: float = 2.0
    segment_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_learning: int | None = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_learning is not None and self.max_learning < 1:
            raise ValueError(f"RerankParams: max_learning must be >= 1 or None, got {self.max_learning}")
        for name in ("n_candidates", "n_negatives", "guard_window", "guard_min_trials"):
            if getattr(self, name) < 1:
                raise ValueError(f"RerankParams: {name} must be >= 1, got {getattr(self, name)}")
        for segment, overrides in (self.segment_params or {}).items():
            unknown = set(overrides) - set(SEGMENT_KEYS)
            if unknown:
                raise ValueError(f"RerankParams: segment_params[{segment!r}] has {sorted(unknown)}; "
                                 f"a segment may override only {list(SEGMENT_KEYS)}")

    def of(self, segment: str, name: str) -> Any:
        """A segment's value of a parameter: its override, else the default."""
        return (self.segment_params or {}).get(segment, {}).get(name, getattr(self, name))

    def guard_args(self, segment: str) -> dict[str, Any]:
        """:class:`~stream.models.rerank.guard.SegmentGuard` arguments of a segment."""
        window = int(self.of(segment, "guard_window"))
        return {"window": window, "margin": float(self.of(segment, "guard_margin")),
                "min_trials": min(int(self.of(segment, "guard_min_trials")), window),
                "z": float(self.of(segment, "guard_z"))}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> "RerankParams":
        """From a configuration's re-ranker part; keys of other models are left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (params or {}).items() if k in names})
