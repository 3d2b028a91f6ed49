"""A synthetic world that produces realistic clickstream, with a known ground truth.

Users belong to a few segments; each segment has a latent taste vector and each user
a noisy copy of it. Items belong to categories, each with a latent centroid; an
item's vector is a noisy copy of its category's, plus a popularity bias. The true
affinity of user u for item i is ``taste_u . v_i / sqrt(d) + bias_i``.

A session is a few steps; at each step the user is shown a slate (an impression:
popular items and random ones), maybe clicks the one they like best, then either
dwells on it (longer for higher affinity) or skips it. Everything is drawn from
one seeded generator, so a seed fixes the whole stream.

Examples
--------
>>> world = World(WorldConfig(n_users=50, n_items=40, n_segments=2, n_categories=4, seed=1))
>>> events = list(world.generate(200, start_ts=1000.0))
>>> sorted({etype for etype, _ in events})
['click', 'dwell', 'impression', 'skip']
>>> events == list(World(WorldConfig(n_users=50, n_items=40, n_segments=2, n_categories=4, seed=1)).generate(200, start_ts=1000.0))
True
>>> world.affinity(0).shape
(40,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

__all__ = ["World", "WorldConfig", "SEGMENT_NAMES"]

SEGMENT_NAMES = (
    "commuters", "night-owls", "weekenders", "students", "families", "gamers", "cinephiles", "newshounds",
)
_DEVICES = ("ios", "android", "web", "tv")
_COUNTRIES = ("fr", "de", "us", "br", "in", "jp")
_AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")


@dataclass(frozen=True)
class WorldConfig:
    n_users: int = 2000
    n_items: int = 500
    n_segments: int = 4
    n_categories: int = 8
    dim: int = 8
    seed: int = 7
    slate_size: int = 5
    mean_session_steps: float = 4.0
    taste_noise: float = 0.6
    item_noise: float = 0.6
    #: Inject drift: at this event index the tastes of segment ``drift_segment`` rotate
    #: (a random orthogonal rotation of its users' vectors). None: a stationary world.
    drift_at: int | None = None
    drift_segment: int = 0
    #: Item prices (what a purchase is worth): log-normal with this median and log-scale spread.
    price_median: float = 20.0
    price_sigma: float = 0.8

    def __post_init__(self):
        if self.drift_at is not None and not 0 <= self.drift_segment < self.n_segments:
            raise ValueError(f"WorldConfig.drift_segment is {self.drift_segment}: must be in 0..{self.n_segments - 1}")
        for name in ("n_users", "n_items", "n_segments", "n_categories", "dim", "slate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldConfig.{name} is {getattr(self, name)}: must be >= 1")
        if not (self.price_median > 0 and self.price_sigma >= 0):
            raise ValueError(f"WorldConfig.price_median is {self.price_median} and price_sigma {self.price_sigma}: "
                             "the median must be > 0 and the spread >= 0")
        if self.slate_size > self.n_items:
            raise ValueError(f"WorldConfig.slate_size is {self.slate_size}: must be <= n_items ({self.n_items})")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def click_probability(affinity):
    """How likely a user who looks at an item clicks it, from their true affinity for it (the
    one click rule of the open stream and of :func:`producers.response.respond`).

    >>> round(float(click_probability(0.0)), 4), round(float(click_probability(3.0)), 4)
    (0.0759, 0.7503)
    """
    return _sigmoid(1.2 * affinity - 2.5)


def after_click(rng: np.random.Generator, affinity: float) -> tuple[str, dict[str, float]]:
    """What follows a click: ``("dwell", {"seconds"})``, longer for a higher affinity, or
    ``("skip", {"after_seconds"})``; the dwell is more likely the higher the affinity. Two
    draws from ``rng`` (the order :meth:`World.generate` has always drawn them in)."""
    if rng.random() < _sigmoid(1.5 * affinity - 1.5):
        seconds = float(np.clip(rng.lognormal(np.log(30.0) + 0.8 * affinity, 0.5), 1.0, 3600.0))
        return "dwell", {"seconds": round(seconds, 2)}
    return "skip", {"after_seconds": round(float(rng.uniform(1.0, 15.0)), 2)}


class World:
    """The simulated users, items and their true tastes (see the module docstring)."""

    def __init__(self, config: WorldConfig):
        self.config = config
        c = config
        rng = np.random.default_rng(c.seed)
        self.user_ids = [f"u{i:06d}" for i in range(c.n_users)]
        self.item_ids = [f"i{i:06d}" for i in range(c.n_items)]
        self.segment_names = [
            SEGMENT_NAMES[s] if s < len(SEGMENT_NAMES) else f"segment-{s}" for s in range(c.n_segments)
        ]
        self.category_names = [f"cat-{k}" for k in range(c.n_categories)]

        seg_taste = rng.normal(0.0, 1.0, (c.n_segments, c.dim))
        self.user_segment_index = rng.integers(0, c.n_segments, c.n_users)
        self.user_vectors = seg_taste[self.user_segment_index] + rng.normal(0.0, c.taste_noise, (c.n_users, c.dim))
        centroids = rng.normal(0.0, 1.0, (c.n_categories, c.dim))
        self.item_category_index = rng.integers(0, c.n_categories, c.n_items)
        self.item_vectors = centroids[self.item_category_index] + rng.normal(0.0, c.item_noise, (c.n_items, c.dim))
        self.item_bias = rng.normal(0.0, 0.5, c.n_items)
        # How often a user shows up, and how often an item gets on a slate: heavy-tailed both.
        self.user_activity = rng.lognormal(0.0, 1.0, c.n_users)
        self.user_activity /= self.user_activity.sum()
        self.item_exposure = np.exp(self.item_bias * 2.0)
        self.item_exposure /= self.item_exposure.sum()
        self.user_attrs = [
            {
                "segment": self.segment_names[self.user_segment_index[u]],
                "country": _COUNTRIES[int(rng.integers(len(_COUNTRIES)))],
                "age_band": _AGE_BANDS[int(rng.integers(len(_AGE_BANDS)))],
            }
            for u in range(c.n_users)
        ]
        self._rng = np.random.default_rng(c.seed + 1)  # the event stream's own generator
        # Prices have a generator of their own: the draws above, and so every stream, stay as they were.
        self.item_price = np.maximum(np.round(np.random.default_rng([c.seed, 2]).lognormal(
            np.log(c.price_median), c.price_sigma, c.n_items), 2), 0.01)
        self.drifted_at: int | None = None

    # --- ground truth ---------------------------------------------------------
    def affinity(self, user_index: int) -> np.ndarray:
        """True affinity of one user for every item, shape (n_items,)."""
        return self.user_vectors[user_index] @ self.item_vectors.T / np.sqrt(self.config.dim) + self.item_bias

    def affinities(self, user_index: int, items) -> np.ndarray:
        """True affinity of one user for the items at these indices, in their order."""
        return self.user_vectors[user_index] @ self.item_vectors[items].T / np.sqrt(self.config.dim) + self.item_bias[items]

    def rotate_segment(self, segment_index: int) -> None:
        """Drift: the segment's tastes turn by a random rotation (seeded), the rest stay."""
        rng = np.random.default_rng(self.config.seed + 1000 + segment_index)
        q, r = np.linalg.qr(rng.normal(size=(self.config.dim, self.config.dim)))
        q *= np.sign(np.diag(r))  # a uniformly random orthogonal matrix
        members = self.user_segment_index == segment_index
        self.user_vectors[members] = self.user_vectors[members] @ q.T

    def user_segment(self, user_index: int) -> str:
        return self.segment_names[self.user_segment_index[user_index]]

    def item_index(self, item_id: str) -> int | None:
        """The index of a world item by its id (``i000042`` -> 42), None for an id not of this world."""
        if len(item_id) == 7 and item_id[0] == "i" and item_id[1:].isdigit():
            i = int(item_id[1:])
            return i if i < self.config.n_items else None
        return None

    # --- catalogue events -------------------------------------------------------
    def setup(self, ts: float = 0.0) -> Iterator[tuple[str, dict[str, Any]]]:
        """What a stack needs before the clickstream: every profile (``"user"``) and every item
        (``"item"``), as ``(event_type, payload)``."""
        for payload in self.profiles(ts):
            yield "user", payload
        for payload in self.catalogue(ts):
            yield "item", payload

    def profiles(self, ts: float = 0.0) -> Iterator[dict[str, Any]]:
        """One users-topic record per user."""
        for u, uid in enumerate(self.user_ids):
            yield {"event_id": f"profile-{uid}", "user_id": uid, "ts": ts, "schema": "v1",
                   "attributes": dict(self.user_attrs[u])}

    def catalogue(self, ts: float = 0.0) -> Iterator[dict[str, Any]]:
        """One items-topic record per item."""
        for i, iid in enumerate(self.item_ids):
            yield {"event_id": f"item-{iid}", "item_id": iid, "ts": ts, "schema": "v1",
                   "categories": [self.category_names[self.item_category_index[i]]], "created_at": ts}

    # --- the clickstream --------------------------------------------------------
    def generate(
        self, n_events: int | None, *, start_ts: float = 0.0, step_seconds: float = 0.01, run_id: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(event_type, payload)`` in event-time order; ``None`` means forever.

        ``ts`` advances by ``step_seconds`` per event. Event ids are ``{run_id}-{n}``;
        ``run_id`` defaults to ``sim{seed}``, so the same seed gives the same ids.
        """
        c = self.config
        rng = self._rng
        run = run_id or f"sim{c.seed}"
        n = 0
        session = 0
        ts = start_ts
        while n_events is None or n < n_events:
            if c.drift_at is not None and self.drifted_at is None and n >= c.drift_at:
                self.rotate_segment(c.drift_segment)
                self.drifted_at = n  # the first event generated with the new tastes
            u = int(rng.choice(c.n_users, p=self.user_activity))
            uid = self.user_ids[u]
            session += 1
            steps = int(rng.geometric(1.0 / c.mean_session_steps))
            device = _DEVICES[int(rng.integers(len(_DEVICES)))]
            for _ in range(max(1, steps)):
                n_pop = (c.slate_size + 1) // 2
                slate = np.concatenate(
                    [
                        rng.choice(c.n_items, size=n_pop, p=self.item_exposure),
                        rng.choice(c.n_items, size=c.slate_size - n_pop),
                    ]
                )
                slate = list(dict.fromkeys(int(i) for i in slate))  # unique, order kept
                aff = self.affinities(u, slate)
                rec_id = f"{run}-s{session}-{n}"
                context = {"session_id": f"{run}-s{session}", "device": device}
                out: list[tuple[str, dict[str, Any]]] = [
                    ("impression", {"items": [self.item_ids[i] for i in slate], "rec_id": rec_id})
                ]
                # The user looks at the slate's best item for them, and clicks it if it appeals.
                choice = int(np.argmax(aff + rng.gumbel(0.0, 0.5, len(slate))))
                item = slate[choice]
                a = float(aff[choice])
                if rng.random() < click_probability(a):
                    out.append(("click", {"item_id": self.item_ids[item]}))
                    etype, extra = after_click(rng, a)
                    out.append((etype, {"item_id": self.item_ids[item], **extra}))
                for etype, extra in out:
                    if n_events is not None and n >= n_events:
                        return
                    payload = {"event_id": f"{run}-{n}", "user_id": uid, "ts": round(ts, 3), "schema": "v1",
                               "context": {**context, "position": slate.index(item)} if etype != "impression" else context,
                               **extra}
                    yield etype, payload
                    n += 1
                    ts += step_seconds
