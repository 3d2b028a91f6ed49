"""How a simulated user responds to a list they are shown: the ground truth of the closed loop.

A position-based model over the simulator's true affinity (producers/simulator.py):

* the user looks at the item at rank ``p`` (1-based, as in a list message) with probability
  ``1 / log2(1 + p)``
  (1 at the top, 0.63 at 2, 0.29 at 10: the discount of DCG);
* an item looked at is clicked with the world's click rule, ``click_probability(affinity)``;
* a click is followed by a dwell (longer for a higher affinity) or a skip, the world's
  ``after_click`` rule;
* after a dwell, the item is bought with probability
  ``sigmoid(purchase_scale * affinity + purchase_offset)``, for the item's price.

Nothing here looks at who made the list: a list earns more only by putting the items the user
truly likes where they look. :func:`respond` is a pure function of (world, user, shown items,
generator), so a seed fixes every response.

Examples
--------
>>> import numpy as np
>>> from producers.simulator import World, WorldConfig
>>> world = World(WorldConfig(n_users=20, n_items=30, seed=3))
>>> a = respond(world, 0, [5, 9, 2], np.random.default_rng(1))
>>> a == respond(world, 0, [5, 9, 2], np.random.default_rng(1))
True
>>> {r.event_type for r in a} <= {"click", "dwell", "skip", "purchase"}
True
>>> round(ResponseModel().examination(1), 3), round(ResponseModel().examination(10), 3)
(1.0, 0.289)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from producers.simulator import World, after_click, click_probability

__all__ = ["ResponseModel", "Reaction", "respond"]

_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class ResponseModel:
    """The parameters of the response to a shown list (see the module docstring).

    Parameters
    ----------
    purchases
        False: no purchase is ever drawn (a worker whose contract has no purchase event).
    purchase_scale, purchase_offset
        A dwelled item is bought with probability ``sigmoid(scale * affinity + offset)``.
    currency
        Of every purchase's value: three upper-case letters.
    """

    purchases: bool = True
    purchase_scale: float = 1.0
    purchase_offset: float = -6.0
    currency: str = "EUR"

    def __post_init__(self):
        if not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"ResponseModel.currency is {self.currency!r}: must be three upper-case letters (ISO 4217)")

    @staticmethod
    def examination(rank: int) -> float:
        """How likely the user looks at the item at ``rank`` (1-based)."""
        if rank < 1:
            raise ValueError(f"rank is {rank}: ranks are 1-based")
        return 1.0 / math.log2(1.0 + rank)

    def purchase_probability(self, affinity: float) -> float:
        """How likely a dwelled item is bought."""
        return 1.0 / (1.0 + math.exp(-(self.purchase_scale * affinity + self.purchase_offset)))


@dataclass(frozen=True)
class Reaction:
    """One thing the user did: ``event_type`` (click, dwell, skip, purchase) on the world item
    ``item`` shown at ``rank`` (1-based: the list message's ``rank``; an event's
    ``context.position`` is 0-based, ``rank - 1``), with the event's own ``fields`` (``seconds``;
    ``after_seconds``; ``value`` and ``currency``)."""

    event_type: str
    rank: int
    item: int
    fields: dict[str, Any] = field(default_factory=dict)


def respond(world: World, user_index: int, shown: Sequence[int | None], rng: np.random.Generator,
            model: ResponseModel = ResponseModel()) -> list[Reaction]:
    """What user ``user_index`` does with the items ``shown`` (world item indices, in the order
    served; None for an item the world does not know, which is never clicked).

    Reactions come in the order they happen: rank by rank, each click followed by its
    dwell or skip and, after a dwell, maybe a purchase. The draws from ``rng`` depend only on
    the arguments: the same generator state gives the same reactions.
    """
    known = [i for i in shown if i is not None]
    affinity = dict(zip(known, world.affinities(user_index, known).tolist())) if known else {}
    out: list[Reaction] = []
    for rank, item in enumerate(shown, start=1):
        draw = rng.random()  # drawn for every rank, so an unknown item does not shift the rest
        if item is None:
            continue
        a = affinity[item]
        if draw >= model.examination(rank) * float(click_probability(a)):
            continue
        out.append(Reaction("click", rank, item))
        etype, extra = after_click(rng, a)
        out.append(Reaction(etype, rank, item, extra))
        if etype == "dwell" and model.purchases and rng.random() < model.purchase_probability(a):
            out.append(Reaction("purchase", rank, item,
                                {"value": float(world.item_price[item]), "currency": model.currency}))
    return out
