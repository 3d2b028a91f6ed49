"""Creating streamrec's topics with the right partitions and cleanup policies."""

from __future__ import annotations

import sys
import time

from stream.config import TOPIC_NAMES, Settings

__all__ = ["ensure_topics", "drop_topics", "COMPACTED", "topic_specs"]

#: Latest value per key is all that matters: profiles, the catalogue, the item rows of the model.
COMPACTED = ("users", "items", "item-factors")


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
    _wait_for_leaders(admin, list(wanted), settings.partitions, timeout)
    if created and not quiet:
        print(f"created topics: {', '.join(sorted(created))}", file=sys.stderr)
    return created


def _wait_for_leaders(admin, names: list[str], partitions: int, timeout: float) -> None:
    """Wait until every topic's partitions have leaders: a consumer that joins its group before
    that can be handed an empty assignment and keep it (seen with a freshly started broker)."""
    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(timeout=timeout).topics
        pending = [n for n in names
                   if n not in meta or meta[n].error is not None or len(meta[n].partitions) < partitions
                   or any(p.leader < 0 for p in meta[n].partitions.values())]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout:.0f} s: {', '.join(sorted(pending))}")
        time.sleep(0.2)


def drop_topics(settings: Settings) -> None:
    """Delete a namespace's topics (``topic_prefix``) and the Faust app's internal ones (a
    throw-away run's, a test's); a broker that is down has nothing to clean."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    if not settings.topic_prefix:
        raise ValueError("drop_topics: refusing to drop topics without a topic_prefix (that would be every topic)")
    admin = AdminClient(settings.kafka_client_config())
    try:
        topics = admin.list_topics(timeout=10).topics
    except KafkaException:
        return
    names = [t for t in topics if t.startswith(settings.topic_prefix) or t.startswith(f"{settings.app_id}-")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # already gone, or the broker is stopping: nothing to keep
                pass
