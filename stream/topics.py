"""Creating streamrec's topics with the right partitions and cleanup policies."""

from __future__ import annotations

import sys

from stream.config import TOPIC_NAMES, Settings

__all__ = ["ensure_topics", "COMPACTED", "topic_specs"]

#: Latest value per key is all that matters: profiles and the catalogue.
COMPACTED = ("users", "items")


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Real topic name -> topic config."""
    return {
        settings.topic(name): ({"cleanup.policy": "compact"} if name in COMPACTED else {})
        for name in TOPIC_NAMES
    }


def ensure_topics(settings: Settings, *, timeout: float = 30.0, quiet: bool = False) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.kafka_client_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = topic_specs(settings)
    new = [
        NewTopic(name, num_partitions=settings.partitions, replication_factor=settings.replication_factor, config=conf)
        for name, conf in wanted.items()
        if name not in existing
    ]
    created = []
    for name, fut in (admin.create_topics(new, operation_timeout=timeout).items() if new else []):
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    if created and not quiet:
        print(f"created topics: {', '.join(sorted(created))}", file=sys.stderr)
    return created
