"""Similar items and reasons, on the real stack: co-occurrence rows read back as neighbours and
as the reasons of recommendations, over HTTP, on the recommendations topic and through the SDK."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from consumers import sdk
from producers.sdk import EventProducer
from tests.helpers import applied, wait_for

pytestmark = pytest.mark.integration

JAZZ = [f"jazz{n}" for n in range(8)]
METAL = [f"metal{n}" for n in range(8)]


def _taste_groups(producer) -> int:
    """40 users who like jazz and 40 who like metal; each clicks 5 of their group's 8 items."""
    sent, t = 0, 1.7e9
    for u in range(80):
        group = JAZZ if u < 40 else METAL
        for j in range(5):
            item = group[(u + 3 * j) % len(group)]
            producer.send("click", {"event_id": f"g{u}-{j}", "user_id": f"fan{u:02d}", "item_id": item, "ts": t,
                                    "schema": "v1"})
            sent, t = sent + 1, t + 1.0
    return sent


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_neighbours_and_reasons_point_at_the_users_taste(isolated, worker_factory):
    settings = isolated.model_copy(update={"explore_share": 0.0})
    worker = worker_factory(settings).start()
    with EventProducer(settings) as producer:
        sent = _taste_groups(producer)
        producer.flush()
        wait_for(lambda: applied(settings) >= sent, 60, "the taste groups applied")
        # a new listener likes three jazz items, one at a time (each click after the item rows moved)
        for n, item in enumerate(JAZZ[:3]):
            producer.send("click", {"event_id": f"p{n}", "user_id": "probe-listener", "item_id": item,
                                    "ts": 1.8e9 + n, "schema": "v1"})
            producer.flush()
            wait_for(lambda: applied(settings) >= sent + n + 1, 30, "the probe's click applied")
            time.sleep(1.5)  # the owner publishes rows every STREAMREC_ITEM_PUBLISH_SECONDS
    # similar items: jazz goes with jazz
    similar = wait_for(lambda: (lambda s: s if s["source"] == "cooccurrence" and len(s["items"]) >= 5 else None)(
        _get(f"{worker.url}/items/jazz0/similar?k=5")), 30, "jazz0's neighbours")
    assert {x["item_id"] for x in similar["items"]} <= set(JAZZ), similar
    assert [x["rank"] for x in similar["items"]] == [1, 2, 3, 4, 5]
    assert sdk.similar_items("jazz0", 5, url=worker.url) == similar
    with pytest.raises(LookupError, match="not known"):
        sdk.similar_items("no-such-item", url=worker.url)
    with pytest.raises(urllib.error.HTTPError) as bad:
        _get(f"{worker.url}/items/jazz0/similar?k=0")
    assert bad.value.code == 400
    # reasons: the probe's list says which of their likes each item comes from
    recs = _get(f"{worker.url}/recommendations/probe-listener?k=5")
    liked = [x["reason"]["item_id"] for x in recs["items"] if x["reason"]["kind"] == "because_you_liked"]
    assert len(liked) >= 3 and set(liked) <= set(JAZZ[:3]), recs
    assert {x["item_id"] for x in recs["items"][:3]} <= set(JAZZ), recs
    assert all(x["item_id"] not in JAZZ[:3] for x in recs["items"]), "seen items are left out"
    # the same reasons travel on the recommendations topic
    pushed = wait_for(lambda: sdk.latest_recommendations("probe-listener", settings), 30, "a pushed list")
    assert all("reason" in x and "kind" in x["reason"] for x in pushed["items"]), pushed
    # a user with no signal yet gets their segment's trending items, saying so
    cold = _get(f"{worker.url}/recommendations/nobody-yet?k=3")
    assert cold["model"] == "segment-popularity-v1"
    assert {x["reason"]["kind"] for x in cold["items"]} <= {"popular_in_segment", "popular"}, cold
    worker.stop()
