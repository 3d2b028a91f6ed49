"""Serving experiments: each user ranked with their variant's configuration.

:class:`Serving` holds a :class:`~stream.engine.rank.Ranking` per variant (the engine's
configuration with the variant's overrides, :func:`~stream.experiments.definition.variant_config`)
over the engine's one item side, and the :class:`~stream.experiments.assign.Assigner`. The
engine asks it for its users' assignments and ranks each group of users with their variant's
ranking; a list records the experiment and variant it was ranked under. Learning is shared:
every variant's users teach the same models.
"""

from __future__ import annotations

from stream.engine.rank import Ranked, Ranking
from stream.experiments.assign import Assigner, Assignment
from stream.experiments.definition import Experiment, variant_config

__all__ = ["Serving"]


class Serving:
    """Per-variant rankings and the assigner (see the module docstring)."""

    def __init__(self, experiments: list[Experiment], assigner: Assigner, config, table) -> None:
        self.experiments = list(experiments)
        self.assigner = assigner
        self.rankings: dict[Assignment, Ranking] = {}
        for e in self.experiments:
            for v in e.variants:
                self.rankings[(e.name, v.name)] = Ranking(variant_config(config, v, f"experiment {e.name!r}, "), table)

    @property
    def variants(self) -> dict[str, list[str]]:
        """Experiment name -> its variants' names."""
        return {e.name: [v.name for v in e.variants] for e in self.experiments}

    async def assign(self, segments: dict[str, str]) -> dict[str, Assignment | None]:
        return await self.assigner.assign(segments)

    async def forget(self, user_id: str) -> None:
        """An erasure: the user's assignment and counters, here and in the state."""
        self.assigner.forget(user_id)
        await self.assigner.state.forget(user_id, self.variants)

    @classmethod
    def from_settings(cls, settings, config, table, state, metrics=None) -> "Serving | None":
        """The experiments of STREAMREC_EXPERIMENTS_PATH (None without one); ``state``: an
        :class:`~stream.experiments.state.ExperimentState`."""
        if not settings.experiments_path:
            return None
        from stream.experiments.attribution import new_counters
        from stream.experiments.definition import load

        experiments = load(settings.experiments_path)
        return cls(experiments, Assigner(experiments, state, new_counters, metrics=metrics), config, table)

    async def rank(self, default: Ranking, views, k: int, shared, layers, state, reasons: bool = False) -> list[Ranked]:
        """Each view ranked by its variant's ranking (``view.variant``; None: ``default``)."""
        groups: dict[Assignment | None, list[int]] = {}
        for j, v in enumerate(views):
            groups.setdefault(v.variant, []).append(j)
        out: list[Ranked | None] = [None] * len(views)
        for key, idx in groups.items():
            ranking = default if key is None else self.rankings[key]
            ranked = await ranking.rank([views[j] for j in idx], k, shared, layers, state, reasons=reasons)
            for j, r in zip(idx, ranked):
                if key is not None:
                    r.experiment, r.variant = key
                out[j] = r
        return out  # type: ignore[return-value]
