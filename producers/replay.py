"""Replaying MovieLens-100K (from the recbole wheel) as streamrec events.

Rating-to-event mapping (documented in README.md and docs/ARCHITECTURE.md):

    rating 5     click, then dwell of 120 s
    rating 4     click, then dwell of  60 s
    rating 3     dwell of 30 s, no click (watched, lukewarm: a weak positive, and the item is seen)
    rating 1-2   skip, after_seconds = 10 x rating

A trial is a click (stream/signals.py), so the trials are the ratings of 4 and 5, as in the
rating protocol of docs/EVALUATION.md.

``ts`` is the rating's own timestamp (event time). Event ids are
``ml100k-{user}-{item}-{type}``, so a second replay into the same Redis prefix
is recognised as duplicates, not counted twice. Users get a profile (age band,
gender, occupation, zip code) on the users topic; movies their genres as categories
on the items topic.
"""

from __future__ import annotations

import calendar
from typing import Any, Iterator

__all__ = ["movielens_profiles", "movielens_catalogue", "movielens_stream", "age_band"]


def age_band(age: int) -> str:
    """MovieLens age, in years, to a profile band.

    >>> age_band(17), age_band(30), age_band(60)
    ('under-18', '25-34', '56+')
    """
    for upper, name in ((18, "under-18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55")):
        if age < upper:
            return name
    return "56+"


def movielens_profiles(data_dir) -> Iterator[tuple[str, dict[str, Any]]]:
    from stream.evaluation.datasets import read_users

    for uid, row in read_users(data_dir / "ml-100k.user").items():
        yield "user", {
            "event_id": f"ml100k-profile-{uid}", "user_id": uid, "ts": 0.0, "schema": "v1",
            "attributes": {"age_band": age_band(int(row["age"])), "gender": row["gender"],
                           "occupation": row["occupation"], "zip_code": row["zip_code"]},
        }


def movielens_catalogue(data_dir) -> Iterator[tuple[str, dict[str, Any]]]:
    from stream.evaluation.datasets import read_items

    for iid, row in read_items(data_dir / "ml-100k.item").items():
        year = row.get("release_year")
        created = float(calendar.timegm((int(year), 1, 1, 0, 0, 0))) if year else 0.0
        yield "item", {
            "event_id": f"ml100k-item-{iid}", "item_id": iid, "ts": 0.0, "schema": "v1",
            "categories": list(row.get("categories") or []), "created_at": created,
            "features": {"title": str(row.get("title", ""))},
        }


def movielens_stream(data_dir, limit: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rating events in timestamp order (ties in file order), mapped to contract-v1 events."""
    from stream.evaluation.datasets import read_inter

    inter = read_inter(data_dir / "ml-100k.inter").time_ordered()
    n = len(inter) if limit is None else min(limit, len(inter))
    for k in range(n):
        uid, iid = str(inter.user_ids[k]), str(inter.item_ids[k])
        rating, ts = int(inter.ratings[k]), float(inter.timestamps[k])
        base = {"user_id": uid, "ts": ts, "schema": "v1"}
        if rating >= 4:
            yield "click", {**base, "event_id": f"ml100k-{uid}-{iid}-click", "item_id": iid}
            yield "dwell", {**base, "event_id": f"ml100k-{uid}-{iid}-dwell", "item_id": iid,
                            "seconds": 60.0 * (rating - 3)}
        elif rating == 3:
            yield "dwell", {**base, "event_id": f"ml100k-{uid}-{iid}-dwell", "item_id": iid, "seconds": 30.0}
        else:
            yield "skip", {**base, "event_id": f"ml100k-{uid}-{iid}-skip", "item_id": iid,
                           "after_seconds": 10.0 * rating}
