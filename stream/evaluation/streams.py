"""Evaluation streams as contract events: MovieLens-100K, the simulator, or a user's own file.

Every evaluation (offline, tuning, through a worker) runs on the events a producer would send:
profiles (users topic), the catalogue (items topic) and the interactions, in order. The same
payloads are what ``evaluate --through-worker`` produces to Kafka, so both sides see the
same events.

A user's file is JSON lines in the contract (docs/ARCHITECTURE.md, "Event contract notes"):
one object per line with a ``type`` (click, dwell, skip, impression, user or item) and the
event's fields; interactions keep the file's order.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

from stream.contract import EVENT_TYPES, INTERACTION_TYPES, Event, InvalidEvent, validate_event

__all__ = ["EventStream", "load_stream", "DATASETS"]

DATASETS = ("movielens-100k", "simulator")


@dataclass
class EventStream:
    """A data set as contract payloads, in the order they would be produced."""

    name: str
    profiles: list[dict[str, Any]] = field(default_factory=list)  # users topic payloads
    catalogue: list[dict[str, Any]] = field(default_factory=list)  # items topic payloads
    interactions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (type, payload)
    world: Any = None  # the simulator's World (ground truth), when the stream is simulated
    _events: list[Event] | None = field(default=None, repr=False)

    def events(self) -> list[Event]:
        """The interactions validated (the engine's input), in order."""
        if self._events is None:
            self._events = [validate_event(t, p) for t, p in self.interactions]
        return self._events

    def limit(self, n: int | None) -> "EventStream":
        """The same stream cut after ``n`` interactions."""
        if n is None or n >= len(self.interactions):
            return self
        return EventStream(self.name, self.profiles, self.catalogue, self.interactions[:n], self.world)

    @property
    def positives(self) -> int:
        from stream.signals import signal_weight

        return sum(signal_weight(ev) > 0 for ev in self.events())


def load_stream(dataset: str, limit: int | None = None, sim_events: int = 100_000, seed: int = 7,
                ratings: int | None = None) -> EventStream:
    """A data set by name (``movielens-100k``, ``simulator``) or a path to a JSON-lines file.

    ``limit`` cuts after that many interaction events; ``ratings`` (MovieLens) after that many
    ratings (a rating of 4 or 5 is two events: a click and a dwell).
    """
    if dataset == "movielens-100k":
        from producers.replay import movielens_catalogue, movielens_profiles, movielens_stream
        from stream.evaluation.datasets import movielens_100k_dir

        d = movielens_100k_dir()
        return EventStream(dataset, [p for _, p in movielens_profiles(d)], [p for _, p in movielens_catalogue(d)],
                           list(movielens_stream(d, limit=ratings))).limit(limit)
    if dataset == "simulator":
        from producers.simulator import World, WorldConfig

        world = World(WorldConfig(n_users=2000, n_items=500, n_segments=4, n_categories=8, seed=seed))
        start = 1_700_000_000.0
        return EventStream(dataset, list(world.profiles(ts=start)), list(world.catalogue(ts=start)),
                           list(world.generate(sim_events, start_ts=start)), world).limit(limit)
    path = pathlib.Path(dataset)
    if not path.is_file():
        raise ValueError(f"dataset {dataset!r}: not one of {DATASETS} and no such file")
    return _read_file(path).limit(limit)


def _read_file(path: pathlib.Path) -> EventStream:
    out = EventStream(str(path))
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc}") from None
            if not isinstance(raw, dict) or raw.get("type") not in EVENT_TYPES:
                raise ValueError(f"{path}:{n}: each line must be a JSON object with \"type\" one of "
                                 f"{', '.join(EVENT_TYPES)}")
            kind = raw["type"]
            payload = {k: v for k, v in raw.items() if k != "type"}
            try:
                validate_event(kind, payload)
            except InvalidEvent as exc:
                raise ValueError(f"{path}:{n}: invalid {kind} event ({exc.reason}): {exc}") from None
            if kind == "user":
                out.profiles.append(payload)
            elif kind == "item":
                out.catalogue.append(payload)
            else:
                out.interactions.append((kind, payload))
    if not out.interactions:
        raise ValueError(f"{path}: no interaction events ({', '.join(INTERACTION_TYPES)})")
    return out
