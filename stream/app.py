"""The Faust app and its topic declarations, nothing else.

Agents live in stream/agents/, HTTP views in stream/web.py; the worker finds them
by autodiscovery. Run it with ``streamrec worker`` (or ``faust -A stream.app worker``).
"""

from __future__ import annotations

import ssl

import faust

from stream.config import Settings, get_settings

__all__ = ["app", "settings", "event_topic", "users_topic", "items_topic", "recommendations_topic", "dlq_topic", "rec_requests_topic", "alerts_topic",
           "item_updates_topic", "item_factors_topic", "erasures_topic", "erasures_done_topic", "TOPIC_EVENT_TYPES"]

settings = get_settings()


def _credentials(s: Settings):
    """Faust's broker credentials for the security settings (None for PLAINTEXT). TLS contexts
    verify the broker's certificate and host name against STREAMREC_KAFKA_SSL_CAFILE, or the
    system's CAs when it is empty."""
    if s.kafka_security_protocol == "PLAINTEXT":
        return None
    context = None
    if s.kafka_security_protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=s.kafka_ssl_cafile or None)
    if s.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=s.kafka_sasl_username,
            password=s.kafka_sasl_password.get_secret_value(),
            mechanism=s.kafka_sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


app = faust.App(
    settings.app_id,
    broker=[f"kafka://{host.strip()}" for host in settings.bootstrap_servers.split(",") if host.strip()],
    broker_credentials=_credentials(settings),
    autodiscover=["stream.agents", "stream.web"],
    origin="stream",
    datadir=str(settings.datadir_path),
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    topic_disable_leader=True,
    web_host=settings.web_host,
    web_bind=settings.web_host,  # bind where we advertise (Faust binds 0.0.0.0 otherwise)
    web_port=settings.web_port,
    # Faust's own /router and /table views: no tables here, and /router shows every worker's URL.
    web_router_enabled=False,
    web_tables_enabled=False,
    # 500 records a poll avoids the wait_empty hangs seen with larger polls.
    broker_max_poll_records=500,
    # aiokafka drains a fetch partition by partition: small fetches keep the topics close in event time
    consumer_max_fetch_size=settings.consumer_fetch_bytes,
    consumer_auto_offset_reset="earliest",
    consumer_group_instance_id=settings.worker_id or None,
    broker_session_timeout=settings.session_timeout_seconds,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
    producer_linger=0.005,
)

#: Real topic name -> event type, for the co-partitioned interaction topics (key = user_id).
TOPIC_EVENT_TYPES = {
    settings.topic("clicks"): "click",
    settings.topic("dwell"): "dwell",
    settings.topic("skips"): "skip",
    settings.topic("impressions"): "impression",
}

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
