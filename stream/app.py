"""The Faust app and its topic declarations, nothing else.

Agents live in stream/agents/, HTTP views in stream/web.py; the worker finds them
by autodiscovery. Run it with ``streamrec worker``, which runs
``faust -A stream.app --loop <STREAMREC_EVENT_LOOP> ... worker`` (stream.faustapp.worker_argv).
"""

from __future__ import annotations

from stream.config import get_settings
from stream.contract import INTERACTION_TYPES, TOPIC_OF
from stream.faustapp import build_app

__all__ = ["app", "settings", "event_topic", "users_topic", "items_topic", "recommendations_topic", "dlq_topic", "rec_requests_topic", "alerts_topic",
           "item_updates_topic", "item_factors_topic", "erasures_topic", "erasures_done_topic", "TOPIC_EVENT_TYPES"]

settings = get_settings()

# Faust's settings come from the one builder (stream/faustapp/app.py), which the benchmark's no-op app shares.
app = build_app(settings.app_id, settings, autodiscover=["stream.agents", "stream.web"], origin="stream")

#: Real topic name -> event type, for the co-partitioned interaction topics (key = user_id):
#: clicks, dwell, skips, impressions and purchases.
TOPIC_EVENT_TYPES = {settings.topic(TOPIC_OF[t]): t for t in INTERACTION_TYPES}

event_topic = app.topic(*TOPIC_EVENT_TYPES, partitions=settings.partitions)
users_topic = app.topic(settings.topic("users"), partitions=settings.partitions, compacting=True)
items_topic = app.topic(settings.topic("items"), partitions=settings.partitions, compacting=True)
recommendations_topic = app.topic(settings.topic("recommendations"), partitions=settings.partitions)
dlq_topic = app.topic(settings.topic("events.dlq"), partitions=settings.partitions)
rec_requests_topic = app.topic(settings.topic("rec-requests"), partitions=settings.partitions)
# Erasure requests, co-partitioned with the events (key = user_id: the user's owner applies them); replies.
erasures_topic = app.topic(settings.topic("user-erasures"), partitions=settings.partitions)
erasures_done_topic = app.topic(settings.topic("user-erasures.done"), partitions=settings.partitions)
alerts_topic = app.topic(settings.topic("alerts.drift"), partitions=settings.partitions)
# The model's item side: gradients to each item's one owner, item rows from the owners to every worker.
item_updates_topic = app.topic(settings.topic("item-updates"), partitions=settings.partitions)
item_factors_topic = app.topic(settings.topic("item-factors"), partitions=settings.partitions, compacting=True)
